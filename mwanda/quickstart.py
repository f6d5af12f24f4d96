"""The smallest honest end-to-end job: prune the embedded model, measure every language.

``make figures`` runs this until the notebooks exist (issue 5). It loads the committed tiny
multilingual Llama, draws one balanced calibration set from the 15 calibration languages,
prunes a fresh copy with magnitude, Wanda and M-Wanda at 50% sparsity, and prints dense and
pruned bits per byte on the test split of every embedded language (calibration and held-out).
M-Wanda's alpha and beta are still the provisional defaults (not yet tuned on dev).

    python -m mwanda.quickstart [--sparsity 0.5] [--max-chars 12000] [--out build/quickstart.json]
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import torch

from mwanda import data
from mwanda.calibration import atomic_write_text, build_balanced
from mwanda.config import PruneConfig
from mwanda.evaluate import per_language_perplexity
from mwanda.models import load_model
from mwanda.prune import prune_model

MODEL_DIR = data.EMBEDDED_DIR / "models" / "tiny-ml-llama"


def first_paragraphs(lang: str, split: str, max_chars: int) -> str:
    """Paragraphs of ``split`` in id order, joined by blank lines, up to ``max_chars`` characters."""
    out, size = [], 0
    for text in data.load_paragraphs(lang, split).values():
        if size + len(text) > max_chars and out:
            break
        out.append(text)
        size += len(text) + 2
    return "\n\n".join(out)


def run(sparsity: float, max_chars: int, nsamples: int, seqlen: int, seed: int) -> dict:
    model, tokenizer = load_model(str(MODEL_DIR), dtype="float32", device="cpu")
    calib_langs, all_langs = data.languages("calib"), data.languages()
    texts = {lang: data.load_text(lang, "calib") for lang in calib_langs}
    calib = build_balanced(texts, tokenizer, nsamples, seqlen, seed)
    test = {lang: first_paragraphs(lang, "test", max_chars) for lang in all_langs}
    results = {"dense": per_language_perplexity(model, tokenizer, test, progress=False)}
    timings = {}
    for method in ("magnitude", "wanda", "mwanda"):
        pruned = copy.deepcopy(model)
        report = prune_model(
            pruned, calib, PruneConfig(method=method, sparsity=sparsity, seed=seed), progress=False
        )
        timings[method] = report.timings["total_s"]
        results[method] = per_language_perplexity(pruned, tokenizer, test, progress=False)
    return {
        "sparsity": sparsity,
        "calibration": {"languages": calib_langs, "nsamples": nsamples, "seqlen": seqlen, "seed": seed},
        "prune_seconds": timings,
        "bpb": {m: {lang: r.bits_per_byte for lang, r in res.items()} for m, res in results.items()},
        "calib_languages": calib_langs,
    }


def print_table(res: dict) -> None:
    methods = [m for m in res["bpb"] if m != "dense"]
    dense = res["bpb"]["dense"]
    print(f"\nBits per byte on the test split (lower is better), sparsity {res['sparsity']}:")
    print(f"{'lang':<6}{'role':<9}{'dense':>8}" + "".join(f"{m:>11}" for m in methods))
    for lang, d in dense.items():
        role = "calib" if lang in res["calib_languages"] else "heldout"
        print(f"{lang:<6}{role:<9}{d:>8.3f}" + "".join(f"{res['bpb'][m][lang]:>11.3f}" for m in methods))
    for role in ("calib", "heldout"):
        langs = [lang for lang in dense if (lang in res["calib_languages"]) == (role == "calib")]
        rel = {m: sum(res["bpb"][m][lang] / dense[lang] - 1 for lang in langs) / len(langs) for m in methods}
        print(
            f"mean relative increase over dense, {role} languages ({len(langs)}): "
            + ", ".join(f"{m} {100 * v:+.1f}%" for m, v in rel.items())
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sparsity", type=float, default=0.5)
    ap.add_argument("--max-chars", type=int, default=12000, help="test characters per language")
    ap.add_argument("--nsamples", type=int, default=128)
    ap.add_argument("--seqlen", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=data.REPO_ROOT / "build" / "quickstart.json")
    args = ap.parse_args(argv)
    if not (MODEL_DIR / "config.json").exists():
        raise SystemExit(f"no embedded model at {MODEL_DIR}; run `make model` to train it.")
    torch.manual_seed(args.seed)
    start = time.perf_counter()
    res = run(args.sparsity, args.max_chars, args.nsamples, args.seqlen, args.seed)
    res["total_seconds"] = time.perf_counter() - start
    atomic_write_text(args.out, json.dumps(res, indent=2) + "\n")
    print_table(res)
    print(f"\nresults: {args.out}  ({res['total_seconds']:.0f}s in all)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
