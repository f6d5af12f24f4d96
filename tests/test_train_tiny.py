"""Tests for mwanda.build.tiny_model and the committed tiny multilingual Llama."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch

from mwanda import data
from mwanda.build import model_card as mc
from mwanda.build import tiny_model as tt

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


def test_a_training_seed_has_its_own_folder_and_a_cut_run_leaves_the_old_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert tt.model_dir(0) == tt.MODEL_DIR
    assert tt.model_dir(2) == tt.MODEL_DIR.with_name("tiny-ml-llama-seed2")
    with pytest.raises(ValueError, match="seed >= 0"):
        tt.model_dir(-1)
    out = tmp_path / "model"
    out.mkdir()
    (out / "keep.txt").write_text("the old model")

    def cut(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(tt, "train_loop", cut)
    cfg = dataclasses.replace(MICRO, langs=("en",), train_split="dev", max_steps=2, seed=3)
    with pytest.raises(KeyboardInterrupt):
        tt.train(cfg, out)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]  # untouched; the staging folder is not it
    monkeypatch.undo()
    meta = tt.train(cfg, out)
    assert meta["config"]["seed"] == 3 and not (out / "keep.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # staging renamed into place


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


def test_unigram_baseline_is_scored_on_every_token_of_the_text(micro_tokenizer: object) -> None:
    text = data.load_text("ru", "udhr")
    vocab = len(micro_tokenizer)
    unigram = tt.unigram_logprobs(tt.encode(micro_tokenizer, data.load_text("ru", "dev")), vocab)
    assert unigram.exp().sum().item() == pytest.approx(1.0)
    rep = tt.unigram_report(micro_tokenizer, text, unigram)
    assert rep["unigram_ppl"] < vocab  # a fitted unigram beats uniform on in-language text
    uniform = tt.unigram_report(micro_tokenizer, text, torch.full((vocab,), -math.log(vocab)))
    n_ids = len(micro_tokenizer(text, add_special_tokens=False)["input_ids"])
    assert uniform["unigram_ppl"] == pytest.approx(vocab)
    assert uniform["unigram_bpb"] == pytest.approx(n_ids * math.log2(vocab) / len(text.encode()))


def test_card_settings_are_the_embedded_profiles() -> None:
    """The card measures what notebook 00 measures: same text size, batch size and window."""
    from mwanda.study.experiments import profiles

    embedded = profiles()["embedded"]
    assert (embedded["eval_max_chars"], embedded["batch_size"]) == (mc.CARD_MAX_CHARS, mc.CARD_BATCH_SIZE)
    assert embedded["seqlen"] == mc.CARD_WINDOW


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
    """The card's numbers are the runner's (notebook 00's): the same function on the same text
    (three languages, to stay quick). Equal to the last bit on the machine that wrote the card; on
    another CPU (AMD EPYC vs the card's) torch's kernels round differently at ~1e-8 relative, so the
    tolerance is figcheck's 1e-6: far below any difference a figure or claim reports."""
    from mwanda.study import experiments

    model, tok = committed
    report = json.loads((MODEL_DIR / "eval.json").read_text(encoding="utf-8"))
    assert (report["max_chars"], report["window"]) == (mc.CARD_MAX_CHARS, mc.CARD_WINDOW)
    assert report["eval_sample"] == mc.CARD_EVAL_SAMPLE
    cfg = experiments.make_config("embedded", eval_langs=["en", "ja", "hi"], tasks=[])
    assert (cfg.eval_max_chars, cfg.eval_sample) == (mc.CARD_MAX_CHARS, mc.CARD_EVAL_SAMPLE)
    for split in ("test", "udhr"):
        assert experiments._eval_texts(cfg, split) == data.parallel_text(
            cfg.eval_langs, split, mc.CARD_MAX_CHARS, mc.CARD_EVAL_SAMPLE
        )
    rows, _, paragraphs = experiments.evaluate(model, tok, cfg, progress=False)
    assert set(paragraphs) == {"bpb", "udhr_bpb"} and set(paragraphs["bpb"]) == {"en", "ja", "hi"}
    assert len(rows) == 3 * 6
    for row in rows:
        split, _, metric = row["metric"].rpartition("_")
        card = report["results"][row["language"]][split or "test"][metric]
        assert card == pytest.approx(row["value"], rel=1e-6, abs=0), row
    assert "| hi |" in (MODEL_DIR / "model_card.md").read_text(encoding="utf-8")


def test_card_meets_the_quality_bar() -> None:
    report = json.loads((MODEL_DIR / "eval.json").read_text(encoding="utf-8"))
    assert set(report["results"]) == set(data.languages())
    for lang, res in report["results"].items():
        test = res["test"]
        assert test["ppl"] < 0.5 * test["unigram_ppl"], lang
        assert test["bpb"] < test["unigram_bpb"], lang


def test_committed_card_is_rendered_from_eval_json_and_states_licences(tmp_path: Path) -> None:
    """The card is exactly what its eval.json and training metadata render to, licences included."""
    import shutil

    for name in ("eval.json", "training_meta.json"):
        shutil.copy(MODEL_DIR / name, tmp_path / name)
    mc.rewrite_card(tmp_path)
    card = (tmp_path / "model_card.md").read_text(encoding="utf-8")
    assert card == (MODEL_DIR / "model_card.md").read_text(encoding="utf-8")
    assert "## Licences" in card and "MPL-2.0" in card and "MIT" in card


def test_a_replicates_card_names_its_seed_and_how_to_rebuild_it() -> None:
    meta = json.loads((MODEL_DIR / "training_meta.json").read_text(encoding="utf-8"))
    report = json.loads((MODEL_DIR / "eval.json").read_text(encoding="utf-8"))
    meta["config"]["seed"] = 2
    card = mc.render_card(meta, report)
    assert card.startswith("# tiny-ml-llama-seed2\n") and "training seed 2" in card
    assert "`make model SEED=2`" in card and "default model" not in card


def test_build_card_refuses_a_seed_with_no_trained_model(capsys: pytest.CaptureFixture[str]) -> None:
    from mwanda import cli

    assert not tt.model_dir(97).exists()
    assert cli.main(["build", "card", "--seed", "97"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mwanda: error:") and "make model SEED=97" in err
    for artifact in ("model", "card"):  # a negative seed names no folder: refused before any work
        assert cli.main(["build", artifact, "--seed", "-1"]) == 2
        assert "--seed -1: use a seed >= 0." in capsys.readouterr().err
