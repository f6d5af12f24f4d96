"""Wall time and peak memory of the pruning methods (issue 2 §8). Not a test: run by hand.

    .venv/bin/python benchmarks/bench_prune.py                      # 10M and 100M configs
    .venv/bin/python benchmarks/bench_prune.py --sizes 500m --nsamples 32
    .venv/bin/python benchmarks/bench_prune.py --model data/models/tiny-ml-llama

Each (model, method) runs in fresh processes. Time: one process prunes twice; "cold" is the
first prune, "warm" the second (the same work on the already pruned weights).

Memory = the model's bytes + what pruning adds on top of the process as it stood just before
pruning: the peak resident set (VmHWM, reset via /proc/self/clear_refs right before the call)
minus the resident set at that moment, after a warm-up forward of one calibration sequence, and
minus the file-backed pages that appeared during the prune (library code of kernels the warm-up
did not use, such as sort and scatter: ~3 MiB, once per process). So the Python/torch runtime,
its code and GEMM scratch are not counted. Two numbers:

- "rss": glibc as it comes. glibc keeps freed pages of large tensors in its heap and raises its
  mmap threshold as they are freed, so the resident set also holds freed, fragmented memory.
- "live": a second process with MALLOC_MMAP_THRESHOLD_=131072, which fixes that threshold, so
  every allocation over 128 KiB is returned to the OS when freed: the resident set is then what
  the algorithm holds (plus small-object heap). Slower, so not used for the times.

Both are compared with the budget: model + two activation buffers [N, T, d] + one block, + 5%.
Targets: mwanda (uniform) <= 1.10x wanda's wall time; mwanda + cwl <= 1.6x; live <= budget.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

SIZES = {  # random-weight Llama configs, ~10M / ~100M / ~500M parameters
    "10m": dict(
        hidden_size=256, intermediate_size=688, num_hidden_layers=8, num_attention_heads=4, vocab_size=8192
    ),
    "100m": dict(
        hidden_size=768,
        intermediate_size=2048,
        num_hidden_layers=12,
        num_attention_heads=12,
        vocab_size=16384,
    ),
    "500m": dict(
        hidden_size=1536,
        intermediate_size=4096,
        num_hidden_layers=14,
        num_attention_heads=16,
        vocab_size=16384,
    ),
}
METHODS = {
    "magnitude": dict(method="magnitude"),
    "wanda": dict(method="wanda"),
    "mwanda": dict(method="mwanda"),
    "mwanda+cwl": dict(method="mwanda", allocation="cwl"),
    "owl": dict(method="wanda", allocation="owl"),
}
LANGS = ("en", "de", "fr", "es", "it", "pt", "nl", "pl", "ru", "el", "tr", "id", "vi", "ja", "zh")


def rss_mib(field: str = "VmRSS") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def child(spec: dict) -> dict:
    """Build the model, reset the peak, prune, and measure (runs in its own process)."""
    import time

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from mwanda.core.blocks import find_blocks
    from mwanda.core.calibration import CalibrationSet
    from mwanda.core.config import PruneConfig
    from mwanda.core.prune import prune_model

    torch.manual_seed(0)
    if spec["model"] in SIZES:
        model = AutoModelForCausalLM.from_config(AutoConfig.for_model("llama", **SIZES[spec["model"]])).eval()
    else:
        model = AutoModelForCausalLM.from_pretrained(spec["model"], dtype=torch.float32).eval()
    n, t = spec["nsamples"], spec["seqlen"]
    vocab = model.get_input_embeddings().weight.shape[0]
    langs = tuple(LANGS[i % len(LANGS)] for i in range(n))
    calib = CalibrationSet(torch.randint(0, vocab, (n, t), generator=torch.Generator().manual_seed(0)), langs)
    d = model.config.hidden_size
    block_bytes = sum(p.numel() * p.element_size() for p in find_blocks(model)[1][0].parameters())
    model_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    with torch.no_grad():  # warm-up: one sequence's forward maps kernels, thread pools and GEMM
        model(calib.input_ids[:1])  # scratch into memory, as any inference before pruning would
    cfg = PruneConfig(**METHODS[spec["method"]])
    runs = []
    for _ in range(spec["repeats"]):  # cold (first prune in the process), then warm
        at_start, code_at_start = rss_mib(), rss_mib("RssFile")
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM so the peak is the prune's
        start = time.perf_counter()
        report = prune_model(model, calib, cfg, batch_size=spec["batch_size"], progress=False)
        wall = time.perf_counter() - start
        code = rss_mib("RssFile") - code_at_start  # library code paged in for first-used kernels
        runs.append((wall, model_bytes / 2**20 + rss_mib("VmHWM") - at_start - code))
    budget = (model_bytes + 2 * n * t * d * 4 + block_bytes) / 2**20
    return {
        "model": spec["model"],
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "method": spec["method"],
        "wall_s": [r[0] for r in runs],
        "peak_mib": [r[1] for r in runs],
        "budget_mib": budget * 1.05,
        "achieved": report.achieved_sparsity,
    }


def run_child(spec: dict, env: dict | None = None) -> dict:
    res = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)],
        capture_output=True,
        text=True,
        check=True,
        env=None if env is None else os.environ | env,
    )
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="*", default=["10m", "100m"], choices=list(SIZES))
    ap.add_argument("--model", action="append", default=[], help="a saved model directory (repeatable)")
    ap.add_argument("--methods", nargs="*", default=list(METHODS), choices=list(METHODS))
    ap.add_argument("--nsamples", type=int, default=64)
    ap.add_argument("--seqlen", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=1, help="as prune_model's default")
    ap.add_argument("--json", type=Path, help="also write the rows as JSON here")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    rows = []
    head = ("model", "params", "method", "cold s", "warm s", "x wanda", "rss MiB", "live MiB", "budget")
    fmt = "{:>24} {:>7} {:>11} {:>7} {:>7} {:>7} {:>8} {:>8} {:>7} {}"
    print(fmt.format(*head, ""))
    for model in [*args.sizes, *args.model]:
        wanda_wall = None
        for method in args.methods:
            spec = dict(
                model=model,
                method=method,
                nsamples=args.nsamples,
                seqlen=args.seqlen,
                batch_size=args.batch_size,
                repeats=2,
            )
            row = run_child(spec)
            no_cache = run_child(spec | {"repeats": 1}, {"MALLOC_MMAP_THRESHOLD_": "131072"})
            rss, row["live_mib"] = row["peak_mib"][0], no_cache["peak_mib"][0]
            cold, warm = row["wall_s"]
            wanda_wall = warm if method == "wanda" else wanda_wall
            ratio = f"{warm / wanda_wall:.2f}" if wanda_wall else "-"
            ok = "ok" if row["live_mib"] <= row["budget_mib"] else "OVER"
            cells = (Path(model).name, f"{row['params_m']:.1f}M", method, f"{cold:.2f}", f"{warm:.2f}")
            cells += (ratio, f"{rss:.0f}", f"{row['live_mib']:.0f}", f"{row['budget_mib']:.0f}")
            print(fmt.format(*cells, ok), flush=True)
            rows.append(row | {"x_wanda": ratio})
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
