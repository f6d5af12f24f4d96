"""What calibrating on many languages costs (notebook 08): the exact memory law of the
statistics, and measured times.

The pruning driver keeps, for the block being pruned, per linear layer and per calibration
language: a token count and the sum of x_j^2 over its d_in input features, in float64
(``mwanda.core.stats``); M-Wanda with beta > 0 adds, for the FFN down-projection, per-language
activity counts of its d_ffn neurons; methods that need the sum of x_j (ANOVA variation) add
that. CWL needs, per block, the count, sum and sum of squares of the block's input during its
dense pass, and computes one L x L correlation per block. So statistics grow as O(L * d) bytes
per block and CWL's correlation as O(L^2 * d) time, while the model, the calibration buffers
and the Hessians of SparseGPT do not depend on L at a fixed token budget.

:func:`llama_block_bytes` is that law for a Llama-shaped block; ``tests/test_scaling.py``
checks it against what a prune of a tiny Llama reports (``block_statistics_mib``).
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from mwanda import data, udhr
from mwanda.core import allocation
from mwanda.core.calibration import CalibrationSet, build_balanced
from mwanda.core.config import PruneConfig
from mwanda.core.prune import prune_model
from mwanda.io import atomic_write_text

FLOAT64 = 8


@dataclass(frozen=True)
class LlamaShape:
    """The sizes that decide the statistics of one Llama decoder block."""

    hidden: int  # d: input of q, k, v, o, gate, up
    intermediate: int  # d_ffn: input of down
    kv_dim: int  # output of k and v (grouped-query attention), for the block's weight count
    dtype_bytes: int = 2  # the weights' dtype (bfloat16 on a GPU)

    @property
    def block_params(self) -> int:
        d, f, kv = self.hidden, self.intermediate, self.kv_dim
        return 2 * d * d + 2 * d * kv + 3 * d * f

    @property
    def block_bytes(self) -> int:
        return self.block_params * self.dtype_bytes


# Llama-3.1-8B (config.json of meta-llama/Llama-3.1-8B): hidden 4096, intermediate 14336,
# 8 key-value heads of 128 dimensions, 32 blocks.
LLAMA_31_8B = LlamaShape(hidden=4096, intermediate=14336, kv_dim=1024)
LLAMA_31_8B_BLOCKS = 32
LLAMA_31_8B_VOCAB = 128256


def llama_params(shape: LlamaShape, blocks: int, vocab: int) -> int:
    """All parameters: the blocks, untied input and output embeddings, 2 norms per block + the final one."""
    return blocks * shape.block_params + 2 * vocab * shape.hidden + (2 * blocks + 1) * shape.hidden


def llama_block_bytes(
    shape: LlamaShape, n_langs: int, activity: bool = False, sums: bool = False, hessian: bool = False
) -> int:
    """Bytes of one block's statistics while it is pruned (float64): per linear, counts [L] and
    sumsq [L, d_in] (and sums [L, d_in] if ``sums``); the down-projection's activity counts
    [L, d_ffn] if ``activity`` (M-Wanda with beta > 0); one d_in x d_in Hessian per distinct
    input if ``hessian`` (SparseGPT: q/k/v share one, gate/up another)."""
    d, f, L = shape.hidden, shape.intermediate, n_langs
    d_ins = (d,) * 6 + (f,)  # q, k, v, o, gate, up, down
    per_lang = sum(1 + d_in * (2 if sums else 1) for d_in in d_ins) + (f if activity else 0)
    hessians = 3 * d * d + f * f if hessian else 0
    return FLOAT64 * (L * per_lang + hessians)


def cwl_block_bytes(shape: LlamaShape, n_langs: int) -> int:
    """Bytes of CWL's statistics of one block input (counts [L], sums and sumsq [L, d]) plus its
    L x L correlation matrix, held during the dense pass."""
    L, d = n_langs, shape.hidden
    return FLOAT64 * (L * (1 + 2 * d) + L * L)


def time_cwl(n_langs: int, dim: int, repeats: int = 3, seed: int = 0) -> float:
    """Median wall seconds of ``allocation.cross_lingual_correlation`` for one block input of
    ``dim`` features over ``n_langs`` languages (random statistics of 100 tokens per language)."""
    gen = torch.Generator().manual_seed(seed)
    counts = torch.full((n_langs,), 100.0, dtype=torch.float64)
    sums = torch.randn(n_langs, dim, generator=gen, dtype=torch.float64) * 100
    sumsq = sums.square() / 100 + torch.rand(n_langs, dim, generator=gen, dtype=torch.float64) * 100
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        allocation.cross_lingual_correlation(counts, sums, sumsq)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def fit_power(n: list[float], y: list[float]) -> tuple[float, float]:
    """Least-squares fit of log y = log a + k log n: returns (a, k), the growth exponent k."""
    x = torch.tensor(n, dtype=torch.float64).log()
    t = torch.tensor(y, dtype=torch.float64).log()
    if x.numel() < 2 or torch.all(x == x[0]):
        raise ValueError("fit_power needs at least two different sizes")
    k = float(((x - x.mean()) * (t - t.mean())).sum() / ((x - x.mean()) ** 2).sum())
    return float((t.mean() - k * x.mean()).exp()), k


def language_ladder(n: int, min_bytes: int, seed: int = 0) -> list[str]:
    """The first ``n`` calibration languages of the cost sweep: the corpus's calibration
    languages, then its held-out ones, then UDHR declarations of languages the model never saw
    (``udhr.check_unseen``) in an order shuffled with ``seed``. Declarations with fewer than
    ``min_bytes`` UTF-8 bytes (the byte-level model's tokens) are skipped with a ``UdhrWarning``
    that names each one, never padded."""
    corpus = data.languages("calib") + data.languages("heldout")
    unseen = [
        tag
        for tag, row in udhr.udhr_languages(min_bytes=min_bytes).items()
        if row.embedded is None and row.same_language_as is None
    ]
    order = torch.randperm(len(unseen), generator=torch.Generator().manual_seed(seed)).tolist()
    ladder = corpus + [unseen[i] for i in order]
    if n > len(ladder):
        raise ValueError(
            f"only {len(ladder)} languages have {min_bytes} bytes of text; ask for at most that many"
        )
    return ladder[:n]


def prune_cost(
    model, tokenizer, langs: Sequence[str], cfg: PruneConfig, tokens: int, seqlen: int, seed: int = 0
) -> dict:
    """Prune a copy of ``model`` calibrated on ``langs`` with ``tokens`` tokens in all (windows
    of ``seqlen``, balanced): the pruning's wall seconds and the most one block's statistics held."""
    return {"languages": len(langs)} | _timed_prune(
        model, _calibration(tokenizer, langs, tokens, seqlen, seed), cfg
    )


def _calibration(tokenizer, langs: Sequence[str], tokens: int, seqlen: int, seed: int = 0) -> CalibrationSet:
    return build_balanced(udhr.calibration_texts(langs), tokenizer, tokens // seqlen, seqlen, seed)


def _timed_prune(model, calib: CalibrationSet, cfg: PruneConfig) -> dict:
    report = prune_model(copy.deepcopy(model), calib, cfg, batch_size=16, progress=False)
    return {
        "prune_s": report.timings["total_s"],
        "statistics_mib": report.peak_memory["block_statistics_mib"],
    }


CACHE_FOLDER = "scaling"  # under a results folder: the measurements of notebook 08


def cached(results_dir: Path | str, params: dict, compute) -> list[dict]:
    """``compute()``'s rows, stored once as <results_dir>/scaling/<hash of params>.json (a
    temporary file, then a rename) and read back on later runs, or from the shipped copy for the
    shared results folder: measured times are not remeasured."""
    from mwanda.study import shipped

    key = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:20]
    relative = Path(CACHE_FOLDER) / f"{key}.json"
    found = shipped.find_file(relative, results_dir)
    if found is not None:
        return json.loads(found.read_text(encoding="utf-8"))["rows"]
    rows = compute()
    path = Path(results_dir) / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps({"params": params, "rows": rows}, indent=1, default=str) + "\n")
    return rows


def cost_sweep(
    model,
    tokenizer,
    ladder: Sequence[str],
    lang_counts: Sequence[int],
    variants: dict,
    tokens: int,
    seqlen: int,
) -> list[dict]:
    """``prune_cost`` of every variant (label -> PruneConfig fields, at 50%) on the first L
    languages of ``ladder`` for each L; one unrecorded prune first, since the first in a process
    pays one-off costs (allocator, kernels). Each L's calibration set is built once and shared by
    the variants (tokenizing hundreds of declarations costs more than some prunes)."""
    rows = []
    for i, n in enumerate(lang_counts):
        calib = _calibration(tokenizer, ladder[:n], tokens, seqlen)
        if i == 0:
            _timed_prune(model, calib, PruneConfig(sparsity=0.5))
        rows += [
            {"label": label, "languages": n} | _timed_prune(model, calib, PruneConfig(sparsity=0.5, **keys))
            for label, keys in variants.items()
        ]
    return rows
