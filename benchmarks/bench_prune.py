"""Wall time and peak memory of the pruning methods (issue 2 §8, issue 14 parts 5-6). Not a test:
run by hand.

    .venv/bin/python benchmarks/bench_prune.py                      # 10M and 100M configs
    .venv/bin/python benchmarks/bench_prune.py --sizes 500m --nsamples 32
    .venv/bin/python benchmarks/bench_prune.py --model data/models/tiny-ml-llama
    .venv/bin/python benchmarks/bench_prune.py --sizes 100m --methods floor wanda mwanda --repeats 3 \
        --max-other-load 0.15                                        # medians of 3, undisturbed

Each (model, method) runs in fresh processes. Time: one process prunes twice; "cold" is the
first prune, "warm" the second (the same work on the already pruned weights). ``--repeats R``
starts R processes per (model, method), interleaved (floor, wanda, ..., floor, wanda, ...) so that
drifting load on a shared machine hits every method alike; the table shows medians. "other" is
the most CPU (in cores) that other processes used during one of the row's timed runs (/proc/stat
minus this script's children); ``--max-other-load`` throws such runs away and repeats them.

"floor" prunes nothing: it is the least work any sequential prune does, block 0's calibration
inputs (``BlockInputs.capture``) and then two plain forward passes of every decoder block over
all calibration sequences, block by block with the driver's own ``forward_block`` (no hooks, no
statistics, no masks). "x floor" is a method's warm time over the floor's.

Memory = the model's bytes + what pruning adds on top of the process as it stood just before
pruning: the peak resident set (VmHWM, reset via /proc/self/clear_refs right before the call)
minus the resident set at that moment, after a warm-up forward of one calibration sequence, and
minus the file-backed pages that appeared during the prune (library code of kernels the warm-up
did not use, such as the mask selection's: ~3 MiB, once per process). So the Python/torch runtime,
its code and GEMM scratch are not counted. Two numbers:

- "rss": glibc as it comes (median over the repeats' cold prunes). glibc keeps freed pages of
  large tensors in its heap and raises its mmap threshold as they are freed, so the resident set
  also holds freed, fragmented memory.
- "live": a second process with MALLOC_MMAP_THRESHOLD_=131072, which fixes that threshold, so
  every allocation over 128 KiB is returned to the OS when freed: the resident set is then what
  the algorithm holds (plus small-object heap). Slower, so not used for the times.

Both are compared with the budget, + 5%: model + two activation buffers [N, T, d] + one block;
for SparseGPT also the float64 Hessians of one block (one d_in x d_in per distinct linear input,
as ``stats.BlockStatsCollector`` shares them), which the driver holds while it prunes the block.
Targets (``TARGETS``): wanda and mwanda <= 1.15x floor and mwanda+sparsegpt <= 1.15x sparsegpt
(issue 14, batch size 1, the 110M and 447M configs); mwanda (uniform) <= 1.10x wanda; mwanda +
cwl <= 1.6x wanda (issue 2); live <= budget.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

SIZES = {  # random-weight Llama configs: 10.5M / 110.1M / 446.7M parameters (tied embeddings off)
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
FLOOR = "floor"  # not a method: two plain forward passes of every block (see the docstring)
METHODS = {
    FLOOR: None,
    "magnitude": dict(method="magnitude"),
    "wanda": dict(method="wanda"),
    "mwanda": dict(method="mwanda"),
    "mwanda+cwl": dict(method="mwanda", allocation="cwl"),
    "owl": dict(method="wanda", allocation="owl"),
    "sparsegpt": dict(method="sparsegpt"),
    # language-aware SparseGPT, labelled as in the notebooks; alpha = 2 (the CLI default) computes
    # V_j and scales the saliency: dearer than the dev-chosen alpha = beta = 0, which skips both
    "mwanda+sparsegpt": dict(method="sparsegpt", language_aware=True),
}
# (method, reference, bound): warm time of method <= bound x the reference's.
TARGETS = (
    ("wanda", FLOOR, 1.15),  # issue 14 part 5: at batch size 1, 110M and 447M
    ("mwanda", FLOOR, 1.15),
    ("mwanda+sparsegpt", "sparsegpt", 1.15),  # issue 14 part 5
    ("mwanda", "wanda", 1.10),  # issue 2 §8
    ("mwanda+cwl", "wanda", 1.6),
)
RETRIES, RETRY_PAUSE_S = 10, 60  # --max-other-load: repeats of a disturbed run, and the pause before
LANGS = ("en", "de", "fr", "es", "it", "pt", "nl", "pl", "ru", "el", "tr", "id", "vi", "ja", "zh")


def rss_mib(field: str = "VmRSS") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def floor_pass(model, calib, batch_size: int) -> None:
    """The least a sequential prune can do: capture block 0's inputs, then per block one pass
    standing in for the statistics pass and one producing the next block's inputs. Same calls
    as the driver (``BlockInputs``, ``forward_block``, hence ``blocks.run_block``), nothing else."""
    import torch

    from mwanda.core.blocks import find_blocks
    from mwanda.core.passes import BlockInputs, forward_block

    with torch.no_grad():
        x = BlockInputs.capture(model, calib, batch_size)
        outs = torch.empty_like(x.hidden)
        for b, block in enumerate(find_blocks(model)[1]):
            forward_block(block, x, outs, index=b)  # the statistics pass's forward (its outputs unused)
            forward_block(block, x, outs, index=b)  # the pruned block's outputs: the next block's inputs
            x.hidden, outs = outs, x.hidden


def warm_up(model, input_ids) -> int:
    """One forward of ``input_ids`` (maps kernels, thread pools and GEMM scratch into memory, as
    any inference before pruning would); returns the bytes of one block's float64 Hessians: d_in^2
    x 8 per distinct input of block 0's linears, a linear fed the tensor its predecessor just
    read sharing that one (the collector's rule, so q/k/v and gate/up share)."""
    import torch

    from mwanda.core.blocks import block_linears, find_blocks

    seen = []  # the inputs in call order (kept alive, so `is` compares real tensors)

    def hook(module, args) -> None:
        if not seen or seen[-1] is not args[0]:
            seen.append(args[0])

    handles = [
        lin.register_forward_pre_hook(hook) for lin in block_linears(find_blocks(model)[1][0]).values()
    ]
    try:
        with torch.no_grad():
            model(input_ids)
    finally:
        for h in handles:
            h.remove()
    return sum(x.shape[-1] ** 2 * 8 for x in seen)


def solver_bytes(block) -> int:
    """SparseGPT's own float64 temporaries for the block's largest layer, on top of the stored
    Hessians (not in the budget; reported to explain it): the one d_in^2 buffer in which L, H^-1
    and U follow each other beside H (``sparsegpt._try_inverse_factor``), the float64 copy of W
    and the lazy update's product (2 d_out d_in), 8 bytes each. (H is freed once U exists, so U
    and W's copy never live beside it.)"""
    from mwanda.core.blocks import block_linears, weight_matrix

    shapes = [weight_matrix(lin).shape for lin in block_linears(block).values()]
    return max((d_in**2 + 2 * d_out * d_in) * 8 for d_out, d_in in shapes)


def child(spec: dict) -> dict:
    """Build the model, reset the peak, prune (or run the floor), and measure (own process)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from mwanda.core.blocks import find_blocks
    from mwanda.core.calibration import CalibrationSet
    from mwanda.core.config import PruneConfig
    from mwanda.core.prune import prune_model

    if spec.get("threads"):  # fewer threads than cores: steadier times on a machine shared with others
        torch.set_num_threads(spec["threads"])
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
    hessian_bytes = warm_up(model, calib.input_ids[:1])
    config = METHODS[spec["method"]]
    cfg = None if config is None else PruneConfig(**config)
    runs, achieved = [], None
    for _ in range(spec["prunes"]):  # cold (first prune in the process), then warm
        at_start, code_at_start = rss_mib(), rss_mib("RssFile")
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM so the peak is the prune's
        start, cpu_start = time.perf_counter(), time.process_time()
        if cfg is None:
            floor_pass(model, calib, spec["batch_size"])
        else:
            report = prune_model(model, calib, cfg, batch_size=spec["batch_size"], progress=False)
            achieved = report.achieved_sparsity
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        code = rss_mib("RssFile") - code_at_start  # library code paged in for first-used kernels
        runs.append((wall, model_bytes / 2**20 + rss_mib("VmHWM") - at_start - code, cpu))
    held = model_bytes + 2 * n * t * d * 4 + block_bytes
    held += hessian_bytes if config is not None and config["method"] == "sparsegpt" else 0
    return {
        "model": spec["model"],
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "method": spec["method"],
        "batch_size": spec["batch_size"],
        "threads": torch.get_num_threads(),
        "wall_s": [r[0] for r in runs],
        "peak_mib": [r[1] for r in runs],
        "cpu_s": [r[2] for r in runs],  # CPU time of all threads: less sensitive to other load
        "budget_mib": held / 2**20 * 1.05,
        "hessian_mib": hessian_bytes / 2**20,
        "solver_mib": solver_bytes(find_blocks(model)[1][0]) / 2**20,
        "achieved": achieved,
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


def busy_cpu_s() -> float:
    """CPU seconds every process on the machine has used since boot (/proc/stat: all but idle
    and iowait; steal too, as time a co-tenant took)."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(
        int, Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    )
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def wait_until_quiet(limit: float, sample_s: float = 3.0, max_wait_s: float = 1800.0) -> None:
    """Sleep while other processes use more than ``limit`` cores (sampled over ``sample_s``; this
    script is idle meanwhile), at most ``max_wait_s``: a run started into a busy machine is
    likely to be thrown away."""
    deadline = time.monotonic() + max_wait_s
    while time.monotonic() < deadline:
        busy = busy_cpu_s()
        time.sleep(sample_s)
        if (busy_cpu_s() - busy) / sample_s <= limit:
            return
        time.sleep(RETRY_PAUSE_S / 2)


def timed_child(spec: dict, args: argparse.Namespace) -> dict:
    """``run_child``, with ``other_load``: the cores' worth of CPU that other processes used while
    it ran. With ``--max-other-load`` it starts once the machine is that quiet, and a run above it
    is thrown away and repeated after a pause (up to ``RETRIES`` times): on a shared machine a
    busy neighbour slows the 2-thread GEMMs many-fold. A run killed by a signal (another user's
    cleanup, say) is repeated too."""
    for attempt in range(RETRIES + 1):
        if args.max_other_load is not None:
            wait_until_quiet(args.max_other_load)
        start, busy, mine = time.perf_counter(), busy_cpu_s(), sum(os.times()[2:4])
        try:
            run = run_child(spec)
        except subprocess.CalledProcessError as exc:
            if exc.returncode >= 0 or attempt == RETRIES:  # an error of its own: report it
                raise
            print(f"  (killed by signal {-exc.returncode} from outside: again)", file=sys.stderr)
            continue
        wall = time.perf_counter() - start
        run["other_load"] = (busy_cpu_s() - busy - (sum(os.times()[2:4]) - mine)) / wall
        if args.max_other_load is None or run["other_load"] <= args.max_other_load or attempt == RETRIES:
            return run
        print(f"  (other processes used {run['other_load']:.2f} cores: again)", file=sys.stderr)
        time.sleep(RETRY_PAUSE_S)
    raise AssertionError("unreachable")


def measure(model: str, methods: list[str], args: argparse.Namespace) -> list[dict]:
    """``args.repeats`` interleaved rounds of one process per method, then one "live" process per
    method (memory only); returns one row per method with every run's numbers and the medians."""
    base = dict(
        model=model,
        nsamples=args.nsamples,
        seqlen=args.seqlen,
        batch_size=args.batch_size,
        threads=args.threads,
    )
    timed = {m: [] for m in methods}
    for r in range(args.repeats):
        for method in methods:
            run = timed_child(base | {"method": method, "prunes": 2}, args)
            timed[method].append(run)
            (cold, warm), other = run["wall_s"], run["other_load"]
            line = f"cold {cold:.2f} s, warm {warm:.2f} s, other load {other:.2f}"
            print(f"  {model} {method} round {r + 1}: {line}", file=sys.stderr)
    rows = []
    for method in methods:
        runs = timed[method]
        row = runs[0] | {
            "cold_s": [r["wall_s"][0] for r in runs],
            "warm_s": [r["wall_s"][1] for r in runs],
            "cpu_warm_s": [r["cpu_s"][1] for r in runs],
            "rss_mib": [r["peak_mib"][0] for r in runs],
            "other_load": [r["other_load"] for r in runs],
        }
        del row["wall_s"], row["peak_mib"], row["cpu_s"]
        if not args.no_live:
            live = run_child(base | {"method": method, "prunes": 1}, {"MALLOC_MMAP_THRESHOLD_": "131072"})
            row["live_mib"] = live["peak_mib"][0]
        rows.append(row)
    return rows


def median_warm(rows: list[dict], method: str) -> float | None:
    return next((statistics.median(r["warm_s"]) for r in rows if r["method"] == method), None)


def ratio(rows: list[dict], method: str, reference: str) -> float | None:
    """Median warm time of ``method`` over the reference's, None if either was not run."""
    a, b = median_warm(rows, method), median_warm(rows, reference)
    return None if a is None or b is None else a / b


def print_rows(rows: list[dict], fmt: str) -> None:
    for row in rows:
        m = row["method"]
        x_floor, x_wanda = ratio(rows, m, FLOOR), ratio(rows, m, "wanda")
        live = row.get("live_mib")
        ok = "" if live is None else ("ok" if live <= row["budget_mib"] else "OVER")
        cells = (Path(row["model"]).name, f"{row['params_m']:.1f}M", m)
        cells += (f"{statistics.median(row['cold_s']):.2f}", f"{median_warm(rows, m):.2f}")
        cells += tuple("-" if v is None else f"{v:.2f}" for v in (x_floor, x_wanda))
        cells += (f"{statistics.median(row['rss_mib']):.0f}", "-" if live is None else f"{live:.0f}")
        other = f"{max(row['other_load']):.2f}"  # the most other processes took during a timed run
        print(fmt.format(*cells, f"{row['budget_mib']:.0f}", ok, other), flush=True)


def target_lines(rows: list[dict]) -> list[str]:
    """One line per target whose two rows were measured: the ratio, its bound, ok or MISS."""
    out = []
    for method, reference, bound in TARGETS:
        r = ratio(rows, method, reference)
        if r is not None:
            verdict = "ok" if r <= bound else "MISS"
            out.append(f"  target {method} / {reference}: {r:.3f} <= {bound:.2f} {verdict}")
    return out


def solver_lines(rows: list[dict]) -> list[str]:
    """For SparseGPT rows: the live peak over the budget (without its 5%), next to the solver's
    own temporaries for the largest layer, which the budget leaves out."""
    out = []
    for row in rows:
        config = METHODS[row["method"]]
        if config and config["method"] == "sparsegpt" and "live_mib" in row:
            over = row["live_mib"] - row["budget_mib"] / 1.05
            out.append(
                f"  {row['method']}: live - budget = {over:.0f} MiB; solver temporaries of the largest "
                f"layer {row['solver_mib']:.0f} MiB (Hessians in the budget: {row['hessian_mib']:.0f} MiB)"
            )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="*", default=["10m", "100m"], choices=list(SIZES))
    ap.add_argument("--model", action="append", default=[], help="a saved model directory (repeatable)")
    ap.add_argument("--methods", nargs="*", default=list(METHODS), choices=list(METHODS))
    ap.add_argument("--nsamples", type=int, default=64)
    ap.add_argument("--seqlen", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=1, help="sequences per forward (prune_model's default)")
    ap.add_argument("--repeats", type=int, default=1, help="fresh processes per method, interleaved")
    ap.add_argument("--threads", type=int, help="torch threads per process (default: torch's, one per core)")
    ap.add_argument(
        "--max-other-load",
        type=float,
        help="repeat a timed run while other processes used more cores than this meanwhile (e.g. 0.15)",
    )
    ap.add_argument("--no-live", action="store_true", help="skip the MALLOC_MMAP_THRESHOLD_ memory runs")
    ap.add_argument("--json", type=Path, help="also write the rows as JSON here")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    head = (
        "model",
        "params",
        "method",
        "cold s",
        "warm s",
        "x floor",
        "x wanda",
        "rss MiB",
        "live MiB",
        "budget",
        "",
        "other",
    )
    fmt = "{:>24} {:>7} {:>12} {:>7} {:>7} {:>7} {:>7} {:>8} {:>8} {:>7} {:>4} {:>5}"
    setup = f"batch size {args.batch_size}, {args.nsamples} x {args.seqlen} tokens"
    print(f"{setup}, {args.threads or 'default'} threads, medians of {args.repeats}")
    print(fmt.format(*head))
    out = []
    for model in [*args.sizes, *args.model]:
        load_before = os.getloadavg()
        rows = measure(model, args.methods, args)
        load_after = os.getloadavg()
        print_rows(rows, fmt)
        print("\n".join(target_lines(rows) + solver_lines(rows)))
        print(f"  load average (1/5/15 min) before {load_before}, after {load_after}", flush=True)
        out += [r | {"load_before": load_before, "load_after": load_after} for r in rows]
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
