"""Tests for mwanda.train_tiny and the committed tiny multilingual Llama."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from mwanda import data
from mwanda import train_tiny as tt

MODEL_DIR = tt.MODEL_DIR

# A model small enough that a few optimizer steps take well under a second.
MICRO = dataclasses.replace(
    tt.TinyConfig(),
    vocab_size=300,
    tokenizer_chars_per_lang=20_000,
    hidden_size=32,
    num_layers=2,
    num_heads=2,
    num_kv_heads=1,
    intermediate_size=64,
    context=32,
    batch_size=8,
    max_steps=60,
    lr=1e-2,
    warmup_steps=5,
    log_every=5,
)


@pytest.fixture(scope="module")
def committed() -> tuple[torch.nn.Module, object]:
    """The committed model and tokenizer, loaded offline."""
    return tt.load(MODEL_DIR)


@pytest.fixture(scope="module")
def micro_tokenizer() -> object:
    texts = {lang: data.load_text(lang, "dev") for lang in ("en", "ru", "ja")}
    return tt.train_tokenizer(tt.balanced_sample(texts, 20_000, seed=0), MICRO.vocab_size)


# --------------------------------------------------------------------------
# Training code path (micro model, committed corpus slice)
# --------------------------------------------------------------------------


def test_a_few_steps_lower_the_loss(micro_tokenizer: object) -> None:
    streams = {
        lang: torch.tensor(tt.encode(micro_tokenizer, data.load_text(lang, "dev")[:30_000]))
        for lang in ("en", "ru", "ja")
    }
    model = tt.build_model(MICRO, micro_tokenizer)
    rows: list[dict[str, float]] = []
    losses = tt.train_loop(model, tt.BatchSampler(streams, MICRO), MICRO, log=rows.append)
    assert len(losses) == MICRO.max_steps
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert first > math.log(len(micro_tokenizer)) - 0.5  # starts near uniform
    assert last < first - 1.0
    assert rows[-1]["tokens"] == MICRO.max_steps * MICRO.batch_size * MICRO.context


def test_train_entry_point_writes_loadable_model(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cfg = dataclasses.replace(MICRO, langs=("en", "hi"), train_split="dev", max_steps=4, save_every=2)
    meta = tt.train(cfg, tmp_path)
    for name in ("config.json", "model.safetensors", "tokenizer.json", "training_log.csv"):
        assert (tmp_path / name).exists(), name
    assert meta["tokens_seen"] == 4 * cfg.batch_size * cfg.context
    assert set(meta["train_tokens"]) == {"en", "hi"}
    model = AutoModelForCausalLM.from_pretrained(tmp_path, local_files_only=True)
    tok = AutoTokenizer.from_pretrained(tmp_path, local_files_only=True)
    assert sum(p.numel() for p in model.parameters()) == meta["parameters"]
    assert len(tok) == cfg.vocab_size


def test_batch_sampler_shape_seed_and_temperature() -> None:
    streams = {"big": torch.arange(0, 100_000), "small": torch.arange(10**6, 10**6 + 1_000)}
    cfg = dataclasses.replace(MICRO, batch_size=400, context=16)
    a, b = tt.BatchSampler(streams, cfg)(), tt.BatchSampler(streams, cfg)()
    assert tuple(a.shape) == (400, 16) and bool((a == b).all())
    assert bool(((a[:, 1:] - a[:, :-1]) == 1).all())  # contiguous windows of one stream
    share_small = (a[:, 0] >= 10**6).float().mean().item()
    expected = tt.language_probs({"big": 100_000, "small": 1_000}, cfg.temperature_alpha)["small"]
    assert abs(share_small - expected) < 0.05
    assert 1_000 / 101_000 < expected < 0.5  # temperature boosts the small language, not to parity


def test_language_probs_and_lr_schedule() -> None:
    sizes = {"a": 400, "b": 100}
    assert tt.language_probs(sizes, 1.0) == pytest.approx({"a": 0.8, "b": 0.2})
    assert tt.language_probs(sizes, 0.0) == pytest.approx({"a": 0.5, "b": 0.5})
    assert tt.language_probs(sizes, 0.5) == pytest.approx({"a": 2 / 3, "b": 1 / 3})
    cfg = dataclasses.replace(MICRO, lr=1.0, warmup_steps=10, max_steps=110, min_lr_ratio=0.1)
    assert tt.lr_at(0, cfg) == pytest.approx(0.1)
    assert tt.lr_at(9, cfg) == pytest.approx(1.0)
    assert tt.lr_at(60, cfg) == pytest.approx(0.55)
    assert tt.lr_at(110, cfg) == pytest.approx(0.1)


# --------------------------------------------------------------------------
# Evaluation helpers
# --------------------------------------------------------------------------


class UniformLM(torch.nn.Module):
    """Zero logits: perplexity must equal the vocabulary size."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.vocab = vocab
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> SimpleNamespace:
        return SimpleNamespace(logits=torch.zeros(*input_ids.shape, self.vocab))


def test_perplexity_report_on_a_uniform_model(micro_tokenizer: object) -> None:
    text = data.load_text("ru", "udhr")
    vocab = len(micro_tokenizer)
    unigram = tt.unigram_logprobs(tt.encode(micro_tokenizer, data.load_text("ru", "dev")), vocab)
    assert unigram.exp().sum().item() == pytest.approx(1.0)
    rep = tt.perplexity_report(UniformLM(vocab), micro_tokenizer, text, 32, unigram)
    assert rep["ppl"] == pytest.approx(vocab, rel=1e-5)
    assert rep["bpb"] == pytest.approx(rep["tokens"] * math.log2(vocab) / rep["bytes"], rel=1e-5)
    assert rep["unigram_ppl"] < vocab  # a fitted unigram beats uniform on in-language text
    n_ids = len(tt.encode(micro_tokenizer, text))
    assert rep["tokens"] == n_ids - math.ceil(n_ids / 32)  # first token of every window unscored
    assert rep["bytes"] <= len(text.encode("utf-8"))


def test_windows_are_non_overlapping_and_capped() -> None:
    wins = tt.windows(list(range(10)), 4)
    assert wins == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert tt.windows(list(range(9)), 4) == [[0, 1, 2, 3], [4, 5, 6, 7]]  # 1-token tail scores nothing
    assert len(tt.windows(list(range(100)), 4, max_windows=3)) == 3


# --------------------------------------------------------------------------
# The committed tokenizer and model
# --------------------------------------------------------------------------


def test_tokenizer_round_trips_every_script(committed: tuple[torch.nn.Module, object]) -> None:
    _, tok = committed
    assert len(tok) == 8192
    for lang in data.languages():
        paragraphs = list(data.load_paragraphs(lang, "dev").values())[:50]
        paragraphs += list(data.load_paragraphs(lang, "udhr").values())[:3]
        for text in paragraphs:
            ids = tok.encode(text, add_special_tokens=False)
            assert tok.decode(ids) == text, (lang, text)
    mixed = "Ünïcödé — 日本語テキスト, 한국어, हिन्दी, ខ្មែរ, རྫོང་ཁ, Ελληνικά, русский 🙂\n\n\ttab"
    assert tok.decode(tok.encode(mixed, add_special_tokens=False)) == mixed


def test_committed_model_loads_offline(
    committed: tuple[torch.nn.Module, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    from transformers import AutoModelForCausalLM, LlamaForCausalLM

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = AutoModelForCausalLM.from_pretrained(MODEL_DIR, local_files_only=True)
    assert isinstance(model, LlamaForCausalLM)
    n_params = sum(p.numel() for p in model.parameters())
    assert 5_000_000 <= n_params <= 10_000_000
    names = {name.rsplit(".", 2)[-2] for name, _ in model.named_parameters() if name.endswith("weight")}
    assert {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"} <= names
    cfg = model.config
    assert cfg.num_key_value_heads < cfg.num_attention_heads and cfg.max_position_embeddings == 256
    assert (MODEL_DIR / "model.safetensors").stat().st_size < 25 * 2**20
    meta = json.loads((MODEL_DIR / "training_meta.json").read_text())
    assert meta["parameters"] == n_params


def test_committed_model_reproduces_card(committed: tuple[torch.nn.Module, object]) -> None:
    model, tok = committed
    report = json.loads((MODEL_DIR / "eval.json").read_text(encoding="utf-8"))
    for lang, expected in report["check"].items():
        got = tt.perplexity_report(model, tok, data.load_text(lang, "test"), 256, None, tt.CHECK_WINDOWS)
        assert got["ppl"] == pytest.approx(expected, rel=0.01), lang
    # One full row of the card table (hi: the smallest test split, so it is quick).
    card = report["results"]["hi"]["test"]
    got = tt.perplexity_report(model, tok, data.load_text("hi", "test"), 256, None, report["max_windows"])
    assert got["ppl"] == pytest.approx(card["ppl"], rel=0.01)
    assert got["bpb"] == pytest.approx(card["bpb"], rel=0.01)
    assert "| hi |" in (MODEL_DIR / "model_card.md").read_text(encoding="utf-8")


def test_card_meets_the_quality_bar() -> None:
    report = json.loads((MODEL_DIR / "eval.json").read_text(encoding="utf-8"))
    assert set(report["results"]) == set(data.languages())
    for lang, res in report["results"].items():
        test = res["test"]
        assert test["ppl"] < 0.5 * test["unigram_ppl"], lang
        assert test["bpb"] < test["unigram_bpb"], lang
