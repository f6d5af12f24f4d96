"""Train the embedded tiny multilingual Llama (tokenizer + model) on the embedded corpus.

``mwanda build model`` reproduces ``data/models/tiny-ml-llama``:

1. a byte-level BPE tokenizer (8192 tokens) trained on language-balanced samples
   of the train split;
2. a ``LlamaForCausalLM`` (RMSNorm, SwiGLU, RoPE, grouped-query attention) trained
   from scratch, sampling languages with a temperature so that the natural
   resource imbalance of the corpus stays visible;
3. ``mwanda build card`` evaluates it (``model_card.py``) and writes ``model_card.md``
   and ``eval.json``.

CPU is enough (2 cores, under an hour); a GPU is used when present. Nothing runs
at import time.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import json
import math
import random
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mwanda import data
from mwanda.io import swap_in_dir

MODEL_DIR = data.EMBEDDED_DIR / "models" / "tiny-ml-llama"


def model_dir(seed: int = 0) -> Path:
    """Where the model trained with ``seed`` lives: the committed default for seed 0, a sibling
    ``tiny-ml-llama-seed<N>`` for the others (the training-seed replicates)."""
    if seed < 0:
        raise ValueError(f"seed={seed}: use a seed >= 0.")
    return MODEL_DIR if seed == 0 else MODEL_DIR.with_name(f"{MODEL_DIR.name}-seed{seed}")


EOS = "<|endoftext|>"


@dataclass(frozen=True)
class TinyConfig:
    """Everything that determines the committed tokenizer and weights."""

    seed: int = 0  # one seed for tokenizer sampling, init and batch sampling
    langs: tuple[str, ...] = ()  # empty = every language of data/languages.yaml
    train_split: str = "train"  # tests train on a committed split (train is rebuilt, not committed)
    vocab_size: int = 8192  # small enough that the embedding stays ~2M params
    tokenizer_chars_per_lang: int = 400_000  # balanced: each script gets merges
    hidden_size: int = 256  # with 8 layers -> ~8M params, fits the CPU budget
    num_layers: int = 8  # depth matters more than width for pruning studies
    num_heads: int = 4  # head_dim 64, the usual Llama head size
    num_kv_heads: int = 2  # < num_heads so grouped-query attention is exercised
    intermediate_size: int = 688  # ~8/3 * hidden, the Llama SwiGLU ratio
    context: int = 256  # the model card's evaluation window too
    tie_embeddings: bool = True  # saves 2M params that would add little
    batch_size: int = 16  # 4096 tokens per step: stable loss on CPU
    max_steps: int = 1700  # measured ~1.9k tokens/s on 1 of 2 shared cores: ~57 min, 7.0M tokens
    lr: float = 2e-3  # small models tolerate a high peak LR; 3e-3 risked spikes
    min_lr_ratio: float = 0.1  # cosine decays to 10% of the peak
    warmup_steps: int = 100  # short warmup: Adam moments settle fast at this size
    weight_decay: float = 0.1  # the usual Llama/GPT value
    grad_clip: float = 1.0  # guards against early loss spikes at high LR
    temperature_alpha: float = 0.5  # p(lang) ~ tokens^alpha: rare languages get more, not equal
    log_every: int = 10  # rows of training_log.csv
    save_every: int = 500  # a usable checkpoint exists even if a run is cut short
    threads: int = 1  # 2 cores shared with other work: 2 threads stalled (OpenMP oversubscription)


# --------------------------------------------------------------------------
# Tokenizer
# --------------------------------------------------------------------------


def balanced_sample(texts: dict[str, str], chars_per_lang: int, seed: int) -> list[str]:
    """Up to ``chars_per_lang`` characters of whole paragraphs per language, randomly chosen."""
    rng = random.Random(seed)
    out: list[str] = []
    for lang in sorted(texts):
        paragraphs = texts[lang].split("\n\n")
        rng.shuffle(paragraphs)
        total = 0
        for paragraph in paragraphs:
            if total >= chars_per_lang:
                break
            out.append(paragraph)
            total += len(paragraph)
    return out


def train_tokenizer(samples: Sequence[str], vocab_size: int) -> Any:
    """A byte-level BPE tokenizer wrapped as a Hugging Face fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(samples, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=EOS,
        eos_token=EOS,
        pad_token=EOS,
        clean_up_tokenization_spaces=False,
        model_max_length=1 << 30,
    )


def encode(tokenizer: Any, text: str) -> list[int]:
    """Token ids of ``text`` without special tokens (paragraphs stay separated by \\n\\n)."""
    chunks = text.split("\n\n")
    ids: list[int] = []
    nl = tokenizer.encode("\n\n", add_special_tokens=False)
    for i, part in enumerate(tokenizer(chunks, add_special_tokens=False)["input_ids"]):
        if i:
            ids.extend(nl)
        ids.extend(part)
    return ids


# --------------------------------------------------------------------------
# Model and data
# --------------------------------------------------------------------------


def build_model(cfg: TinyConfig, tokenizer: Any) -> torch.nn.Module:
    """A randomly initialised ``LlamaForCausalLM`` of the configured size."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_kv_heads,
        max_position_embeddings=cfg.context,
        tie_word_embeddings=cfg.tie_embeddings,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.eos_token_id,
        rope_theta=10000.0,
    )
    torch.manual_seed(cfg.seed)
    return LlamaForCausalLM(config)


def language_probs(sizes: dict[str, int], alpha: float) -> dict[str, float]:
    """Temperature sampling: p(lang) proportional to size**alpha (alpha=1: natural, 0: uniform)."""
    weights = {lang: n**alpha for lang, n in sizes.items()}
    total = sum(weights.values())
    return {lang: w / total for lang, w in weights.items()}


class BatchSampler:
    """Random ``context``-token windows, language drawn from ``language_probs``."""

    def __init__(self, streams: dict[str, torch.Tensor], cfg: TinyConfig) -> None:
        self.langs = sorted(streams)
        self.streams = streams
        probs = language_probs({k: len(v) for k, v in streams.items()}, cfg.temperature_alpha)
        self.probs = torch.tensor([probs[lang] for lang in self.langs])
        self.cfg = cfg
        self.gen = torch.Generator().manual_seed(cfg.seed)

    def __call__(self) -> torch.Tensor:
        """One batch of shape (batch_size, context)."""
        n = self.cfg.context
        picks = torch.multinomial(self.probs, self.cfg.batch_size, True, generator=self.gen)
        rows = []
        for i in picks.tolist():
            stream = self.streams[self.langs[i]]
            start = int(torch.randint(0, len(stream) - n + 1, (1,), generator=self.gen))
            rows.append(stream[start : start + n])
        return torch.stack(rows)


def lr_at(step: int, cfg: TinyConfig) -> float:
    """Linear warmup, then cosine decay to ``min_lr_ratio * lr`` at ``max_steps``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps))
    cosine = 0.5 * (1 + math.cos(math.pi * progress))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * cosine)


def train_loop(
    model: torch.nn.Module,
    sample: Callable[[], torch.Tensor],
    cfg: TinyConfig,
    log: Callable[[dict[str, float]], None] | None = None,
    checkpoint: Callable[[int], None] | None = None,
) -> list[float]:
    """AdamW training; returns the loss of every step."""
    from tqdm.auto import tqdm

    device = next(model.parameters()).device
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay}],
        lr=cfg.lr,
        betas=(0.9, 0.95),
        weight_decay=0.0,
    )
    model.train()
    losses: list[float] = []
    start, tokens = time.time(), 0
    bar = tqdm(range(cfg.max_steps), desc="train", unit="step", file=sys.stderr)
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        batch = sample().to(device)
        # HF shifts labels internally: labels == inputs is next-token prediction.
        loss = model(input_ids=batch, labels=batch).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        losses.append(loss.item())
        tokens += batch.numel()
        rate = tokens / max(time.time() - start, 1e-9)
        bar.set_postfix(loss=f"{losses[-1]:.3f}", tok_s=f"{rate:,.0f}")
        if log and (step % cfg.log_every == 0 or step == cfg.max_steps - 1):
            recent = losses[-cfg.log_every :]
            log(
                {
                    "step": step + 1,
                    "tokens": tokens,
                    "loss": sum(recent) / len(recent),
                    "lr": lr_at(step, cfg),
                    "tokens_per_s": rate,
                    "elapsed_s": time.time() - start,
                }
            )
        if checkpoint and (step + 1) % cfg.save_every == 0:
            checkpoint(step + 1)
    return losses


# --------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------


def unigram_logprobs(train_ids: Sequence[int], vocab_size: int) -> torch.Tensor:
    """Add-one-smoothed unigram log-probabilities over the vocabulary."""
    counts = torch.bincount(torch.tensor(train_ids, dtype=torch.long), minlength=vocab_size)
    probs = (counts.double() + 1) / (counts.sum().double() + vocab_size)
    return probs.log()


def unigram_report(tokenizer: Any, text: str, unigram: torch.Tensor) -> dict[str, float]:
    """The unigram baseline on ``text``, scored on the same tokens as the model (all of them:
    lm-eval's rolling windows predict every token once) and per byte of the same text."""
    ids = torch.tensor(tokenizer(text, add_special_tokens=False)["input_ids"], dtype=torch.long)
    nll = -unigram[ids].sum().item()
    return {"unigram_ppl": math.exp(nll / ids.numel()), "unigram_bpb": nll / math.log(2) / len(text.encode())}


# --------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------


def pick_device() -> torch.device:
    """CUDA when available (optional), else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def train(cfg: TinyConfig, out: Path | None = None) -> dict[str, Any]:
    """Train tokenizer and model on the embedded train split and save them into ``out``
    (default: ``model_dir(cfg.seed)``). Checkpoints go to a hidden staging folder beside it,
    which replaces ``out`` only when training is done: an interrupted run leaves ``out`` as it was."""
    out = Path(out) if out is not None else model_dir(cfg.seed)
    torch.set_num_threads(cfg.threads)
    random.seed(cfg.seed)
    langs = list(cfg.langs) or data.languages()
    texts = {lang: data.load_text(lang, cfg.train_split) for lang in langs}
    t0 = time.time()
    tokenizer = train_tokenizer(
        balanced_sample(texts, cfg.tokenizer_chars_per_lang, cfg.seed), cfg.vocab_size
    )
    print(f"[train_tiny] tokenizer trained in {time.time() - t0:.0f}s", file=sys.stderr)
    streams = {lang: torch.tensor(encode(tokenizer, texts[lang])) for lang in langs}
    sizes = {lang: len(s) for lang, s in streams.items()}
    print(f"[train_tiny] train tokens: {sum(sizes.values()):,}", file=sys.stderr)
    model = build_model(cfg, tokenizer).to(pick_device())
    staging = out.with_name(f".{out.name}.partial")
    if staging.exists():
        shutil.rmtree(staging)  # a run cut short: its checkpoints are not resumable
    staging.mkdir(parents=True)
    tokenizer.save_pretrained(staging)
    rows: list[dict[str, float]] = []

    def checkpoint(step: int) -> None:
        # A float16 copy halves the committed size; the training weights stay float32.
        copy.deepcopy(model).to(torch.float16).save_pretrained(staging)
        _write_log(staging / "training_log.csv", rows)

    t1 = time.time()
    train_loop(model, BatchSampler(streams, cfg), cfg, log=rows.append, checkpoint=checkpoint)
    seconds = time.time() - t1
    checkpoint(cfg.max_steps)
    meta = {
        "config": dataclasses.asdict(cfg),
        "parameters": sum(p.numel() for p in model.parameters()),
        "tokens_seen": cfg.max_steps * cfg.batch_size * cfg.context,
        "train_tokens": sizes,
        "sampling_probs": language_probs(sizes, cfg.temperature_alpha),
        "train_seconds": seconds,
        "device": str(pick_device()),
        "torch_threads": torch.get_num_threads(),
    }
    (staging / "training_meta.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    swap_in_dir(staging, out)
    return meta


def _write_log(path: Path, rows: list[dict[str, float]]) -> None:
    if not rows:
        return
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})


def load(model_dir: Path = MODEL_DIR) -> tuple[torch.nn.Module, Any]:
    """The committed model (float32 for evaluation) and tokenizer, offline."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not (model_dir / "model.safetensors").exists():
        raise FileNotFoundError(f"{model_dir}/model.safetensors is missing; run `mwanda build model`")
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True, dtype=torch.float32)
    return model.eval(), tokenizer
