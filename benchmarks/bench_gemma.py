"""Gemma 3 270M beside the tiny model on this machine: load, one prune per method, evaluation,
peak memory. Not a test: run by hand (needs the `gemma` extra), about 25 minutes on 2 cores.

    .venv/bin/python benchmarks/bench_gemma.py [--first-load] [--profiles gemma embedded]

Each (profile, method) runs in a fresh process, so its peak resident memory is its own; the
model is loaded from the conversion cache (``--first-load``: also time a conversion into an
empty cache). Prints a Markdown table and writes JSON to build/bench_gemma.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
METHODS = ("magnitude", "wanda", "mwanda", "ria", "sparsegpt")

CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from mwanda.study import experiments as E
from mwanda.evaluation.perplexity import per_language_perplexity
from mwanda.core.prune import prune_model
profile, method = sys.argv[1], sys.argv[2]
cfg = E.make_config(profile, method=method, sparsity=0.5, tasks=[])
t = time.perf_counter(); model, tok = E.dense_model(cfg); load = time.perf_counter() - t
calib = E.calibration_set(cfg)
t = time.perf_counter()
batch = E.resolve_batch_size(cfg.batch_size, model, cfg.nsamples, cfg.seqlen)
report = prune_model(model, calib, cfg.prune_config(), batch_size=batch, progress=False)
prune = time.perf_counter() - t
texts = E.evaluation_texts(cfg)
t = time.perf_counter()
per_language_perplexity(model, tok, texts, None, None, 8, False)
evaluate = time.perf_counter() - t
tokens = sum(len(tok(t, add_special_tokens=False).input_ids) for t in texts.values())
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
row = {"profile": profile, "method": method, "load_s": load, "prune_s": prune, "eval_s": evaluate}
print(json.dumps(row | {"eval_tokens": tokens, "peak_rss_mib": peak}))
"""


def first_load() -> float:
    """Seconds to convert the packaged GGUF into an empty cache and load it."""
    with tempfile.TemporaryDirectory() as cache:
        code = "from mwanda.core.models import load_model; load_model('gemma-3-270m', device='cpu')"
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, env=os.environ | {"MWANDA_CACHE": cache})
        return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--first-load", action="store_true")
    ap.add_argument("--profiles", nargs="+", default=["gemma", "embedded"])
    ap.add_argument("--methods", nargs="+", default=list(METHODS))
    args = ap.parse_args()
    rows = []
    env = os.environ | {"TQDM_DISABLE": "1"}
    for profile in args.profiles:
        for method in args.methods:
            out = subprocess.run(
                [sys.executable, "-c", CHILD, profile, method], capture_output=True, text=True, env=env
            )
            if out.returncode:
                sys.exit(out.stderr)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(rows[-1], flush=True)
    result = {"rows": rows, "first_load_s": first_load() if args.first_load else None}
    print("| profile | method | load s | prune s | eval s (tokens) | peak RSS MiB |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['profile']} | {r['method']} | {r['load_s']:.1f} | {r['prune_s']:.1f} | "
            f"{r['eval_s']:.1f} ({r['eval_tokens']:,}) | {r['peak_rss_mib']:,.0f} |"
        )
    if result["first_load_s"] is not None:
        print(f"first load (conversion into an empty cache): {result['first_load_s']:.0f} s")
    (ROOT / "build").mkdir(exist_ok=True)
    (ROOT / "build" / "bench_gemma.json").write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
