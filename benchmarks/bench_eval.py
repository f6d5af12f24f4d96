"""Budgets of issue 4 §7, measured on the embedded profile. Not a test: run by hand.

    .venv/bin/python benchmarks/bench_eval.py

1. dense per-language perplexity over the embedded profile's 20 languages   (target <= 30 s)
2. one embedded prune (M-Wanda, 50%) + the profile's full evaluation        (target <= 60 s)
3. reloading 1,000 cached records into a DataFrame                          (target <= 2 s)

(1) and (2) use a fresh results directory, so nothing is reused; the model, calibration set and
evaluation texts are loaded before the clock starts, as they are once per notebook.
"""

from __future__ import annotations

import copy
import json
import tempfile
import time
from pathlib import Path

from mwanda.evaluation.perplexity import per_language_perplexity
from mwanda.study import experiments, results


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    cfg = experiments.make_config("embedded", method="mwanda", sparsity=0.5)
    model, tok = experiments._dense_model(cfg.model, cfg.dtype, cfg.device)
    texts = experiments.evaluation_texts(cfg)
    experiments.evaluation_texts(cfg, "udhr")
    experiments._calibration(cfg)
    _, t_ppl = timed(
        lambda: per_language_perplexity(model, tok, texts, cfg.seqlen, None, cfg.batch_size, False)
    )
    chars = sum(map(len, texts.values()))
    print(f"1. perplexity, {len(texts)} languages, {chars:,} chars: {t_ppl:.1f}s (<= 30 s)")
    with tempfile.TemporaryDirectory() as tmp:
        rec, t_run = timed(lambda: experiments.run(cfg, results_dir=tmp, progress=False))
        prune_s = rec["pruning"]["timings"]["total_s"]
        print(f"2. prune + full evaluation: {t_run:.1f}s (prune {prune_s:.1f}s) (<= 60 s); tasks {cfg.tasks}")
        for i in range(1000):  # synthetic copies of a real record, each under its own key
            fake = copy.deepcopy(rec) | {"key": f"bench{i:05d}"}
            fake["config"] = fake["config"] | {"seed": i}
            Path(tmp, f"bench{i:05d}.json").write_text(json.dumps(fake, indent=1))
        df, t_load = timed(lambda: results.load(tmp))
        n = len(list(Path(tmp).glob("*.json")))
        print(f"3. reload {n} records -> {len(df):,} rows: {t_load:.2f}s (<= 2 s)")


if __name__ == "__main__":
    main()
