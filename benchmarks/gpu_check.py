"""One command for whoever gets a GPU first: `make gpu-check` (or this script).

1. runs the GPU-marked tests (`pytest -m gpu`);
2. prunes a random-weight model with Llama-3.1-8B's full dimensions (32 blocks, bfloat16,
   128 x 2048 calibration tokens over the paper's 15 calibration languages) with wanda, mwanda and
   mwanda + cwl, recording wall time per phase and peak CUDA memory;
3. times one 2:4-pruned FFN weight [14336, 4096] through `torch.sparse.to_sparse_semi_structured`
   against the dense matmul;

and writes everything to one JSON (`--out`, default build/gpu_check.json) from which the README's
paper-profile table is built, printing it next to the README's estimates. Budget: 10 minutes on
one 80 GB GPU. `--tiny` runs the same code on a scaled-down model on the CPU (what the test suite
does, so the script's logic is checked without a GPU).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

from mwanda import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "tests"))
from paper_standins import LLAMA31_8B  # noqa: E402  (the architecture; weights here are random)

TINY = LLAMA31_8B | dict(hidden_size=64, intermediate_size=224, num_hidden_layers=2, num_attention_heads=4)
TINY |= dict(num_key_value_heads=1, vocab_size=512)
PAPER_LANGS = ("en", "de", "fr", "es", "it", "pt", "nl", "pl", "ru", "el", "tr", "id", "vi", "ja", "zh")
METHODS = {
    "wanda": {},
    "mwanda": {"method": "mwanda"},
    "mwanda+cwl": {"method": "mwanda", "allocation": "cwl"},
}
# The README's estimates for the 8B model (section "The paper profile on a GPU").
ESTIMATES = {"peak_cuda_gib": 21.0, "prune_minutes": 10.0}


def random_model(dims: dict, device: str, dtype: torch.dtype):
    """A Llama with ``dims``, random weights, initialised directly on ``device``."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # parameters are created in bfloat16: no float32 copy of 8B
    try:
        with torch.device(device):
            model = LlamaForCausalLM(LlamaConfig(**dims))
    finally:
        torch.set_default_dtype(default)
    return model.eval()


def calibration(vocab: int, nsamples: int, seqlen: int):
    """``nsamples`` random sequences split evenly over the paper's 15 calibration languages."""
    from mwanda.core.calibration import CalibrationSet, split_evenly

    gen = torch.Generator().manual_seed(0)
    langs = [lang for lang, n in split_evenly(nsamples, PAPER_LANGS).items() for _ in range(n)]
    return CalibrationSet(torch.randint(0, vocab, (nsamples, seqlen), generator=gen), tuple(langs))


def prune_runs(dims: dict, device: str, dtype: torch.dtype, nsamples: int, seqlen: int) -> dict:
    """Wall time per phase and peak memory of each method on a fresh random model."""
    from mwanda.core.config import PruneConfig
    from mwanda.core.prune import prune_model

    calib = calibration(dims["vocab_size"], nsamples, seqlen)
    out = {}
    for label, overrides in METHODS.items():
        model = random_model(dims, device, dtype)
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        report = prune_model(model, calib, PruneConfig(sparsity=0.5, **overrides), progress=False)
        out[label] = {
            "timings_s": report.timings,
            "achieved_sparsity": report.achieved_sparsity,
            "peak_cuda_gib": torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None,
            "peak_rss_mib": report.peak_memory["peak_rss_mib"],
        }
        del model
    return out


def semi_structured_matmul(d_out: int, d_in: int, tokens: int, repeats: int = 50) -> dict:
    """Seconds per matmul of a 2:4-pruned [d_out, d_in] weight, sparse kernel vs dense (CUDA)."""
    if not torch.cuda.is_available():
        return {"skipped": "no CUDA device"}
    from torch.sparse import to_sparse_semi_structured

    w = torch.randn(d_out, d_in, dtype=torch.bfloat16, device="cuda")
    keep = w.abs().reshape(d_out, -1, 4).topk(2, dim=-1).indices  # the 2 largest of every 4
    mask = torch.zeros_like(w, dtype=torch.bool).reshape(d_out, -1, 4).scatter_(-1, keep, True)
    w = w * mask.reshape(d_out, d_in)
    x = torch.randn(tokens, d_in, dtype=torch.bfloat16, device="cuda")
    sparse = to_sparse_semi_structured(w)
    times = {}
    for name, weight in (("dense", w), ("semi_structured", sparse)):
        torch.nn.functional.linear(x, weight)  # warm-up
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(repeats):
            torch.nn.functional.linear(x, weight)
        torch.cuda.synchronize()
        times[name] = (time.perf_counter() - start) / repeats
    return times | {"speedup": times["dense"] / times["semi_structured"], "shape": [d_out, d_in, tokens]}


def gpu_tests() -> dict:
    """`pytest -m gpu` (skipped without CUDA: there is nothing to run)."""
    if not torch.cuda.is_available():
        return {"skipped": "no CUDA device"}
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-m", "gpu", str(REPO_ROOT / "tests")],
        capture_output=True,
        text=True,
    )
    return {"exit_code": res.returncode, "summary": (res.stdout.strip().splitlines() or [""])[-1]}


def table(result: dict) -> str:
    """Markdown rows: method, phases, peak memory, next to the README's estimates."""
    rows = [
        "| method | capture s | dense pass s | prune s | total s | peak CUDA GiB |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, r in result["prune"].items():
        t = r["timings_s"]
        peak = "-" if r["peak_cuda_gib"] is None else f"{r['peak_cuda_gib']:.1f}"
        rows.append(
            f"| {label} | {t.get('capture_s', 0):.1f} | {t.get('dense_pass_s', 0):.1f} | "
            f"{t.get('prune_s', 0):.1f} | {t['total_s']:.1f} | {peak} |"
        )
    peak, minutes = ESTIMATES["peak_cuda_gib"], ESTIMATES["prune_minutes"]
    rows.append(f"\nREADME estimates (8B): peak ≈ {peak} GiB, prune < {minutes} min")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="scaled-down model on the CPU (tests the logic)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "build" / "gpu_check.json")
    args = parser.parse_args(argv)
    if not args.tiny and not torch.cuda.is_available():
        print("gpu_check: no CUDA device; run with --tiny to check the script on the CPU", file=sys.stderr)
        return 2
    device, dtype = ("cpu", torch.float32) if args.tiny else ("cuda", torch.bfloat16)
    dims, (nsamples, seqlen) = (TINY, (15, 32)) if args.tiny else (LLAMA31_8B, (128, 2048))
    start = time.perf_counter()
    result = {
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "model": {"dims": dims, "dtype": str(dtype), "nsamples": nsamples, "seqlen": seqlen},
        "gpu_tests": {"skipped": "--tiny"} if args.tiny else gpu_tests(),
        "prune": prune_runs(dims, device, dtype, nsamples, seqlen),
        "semi_structured_2_4": semi_structured_matmul(dims["intermediate_size"], dims["hidden_size"], 2048)
        if not args.tiny
        else {"skipped": "--tiny"},
        "estimates": ESTIMATES,
    }
    result["wall_s"] = time.perf_counter() - start
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(table(result))
    print(f"wrote {args.out} ({result['wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
