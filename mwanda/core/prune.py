"""The one pruning driver: sequential, block by block, for every architecture ``blocks`` knows.

For block b (``sequential=True``, the default, as in Wanda): one forward pass over the
calibration inputs collects the per-language statistics of all its linears, they are pruned, and
block b is run again with the pruned weights to produce the inputs of block b + 1.

Non-uniform allocation (OWL, CWL) first needs every block's score D_b, from one dense pass over
all blocks; ``sequential=False`` prunes every block with the statistics of that same dense pass.
Memory: the model, two activation buffers [N, T, d] and the statistics of one block (for
SparseGPT, that block's d_in x d_in Hessians, freed before the next block).

What is pruned how is the method's business (``methods.py``): the loop asks it which statistics
to collect and hands it one linear at a time, so it never changes when a method is added.
"""

from __future__ import annotations

import hashlib
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from mwanda.core import allocation, methods, scores
from mwanda.core.blocks import (
    weight_matrix,
)
from mwanda.core.calibration import CalibrationSet
from mwanda.core.config import ConfigError, PruneConfig
from mwanda.core.memory import peak_memory, release_memory
from mwanda.core.passes import BlockInputs, collect_block_stats, forward_block
from mwanda.core.plan import CoverageWarning, Plan, coverage_warnings, make_plan
from mwanda.core.report import PruningReport, environment_info
from mwanda.core.stats import LanguageStats
from mwanda.core.stats import nbytes as stats_nbytes

Tensor = torch.Tensor


def method_needs(cfg: PruneConfig) -> methods.Needs:
    """What ``cfg.method`` reads from a calibration pass (see ``methods.Needs``)."""
    return methods.get(cfg).needs(cfg)


class MaskHasher:
    """SHA-256 over all masks in pruning order (layer name + packed bits): a run's fingerprint."""

    def __init__(self) -> None:
        self._h = hashlib.sha256()

    def update(self, name: str, mask: Tensor) -> None:
        self._h.update(name.encode() + b"\0" + repr(tuple(mask.shape)).encode())
        self._h.update(np.packbits(mask.cpu().numpy().reshape(-1)).tobytes())

    def hexdigest(self) -> str:
        return self._h.hexdigest()


def needs_data(cfg: PruneConfig, needs: methods.Needs | None = None) -> bool:
    """Every method but uniform magnitude pruning reads calibration activations."""
    return (needs or method_needs(cfg)).data or cfg.allocation != "uniform"


def prune_model(
    model: nn.Module,
    calib: CalibrationSet | None,
    cfg: PruneConfig,
    batch_size: int = 1,
    progress: bool = True,
) -> PruningReport:
    """Prune ``model`` in place as ``cfg`` says and return the report.

    Phases: plan (what to prune, checked), capture (block 0's inputs, every block's call), allocate
    (block sparsities; OWL/CWL need a dense pass), then block by block: statistics, masks, and
    the pruned block's outputs as the next block's inputs.

    ``calib`` may be None only for uniform magnitude pruning, which needs no data.
    ``batch_size``: calibration sequences per forward pass. 1, as Wanda's reference, keeps the
    per-batch activations (batch x seqlen x FFN width) small next to the two [N, T, d] buffers;
    larger batches are faster on CPU. Statistics are exact sums either way.
    """
    clock = _Clock()
    method = methods.get(cfg)  # resolved once: what it needs decides every pass below
    needs = method.needs(cfg)
    plan = make_plan(model, cfg)
    _check_calibration(cfg, calib)
    model.eval()
    with torch.no_grad():
        x = (
            clock.time("capture_s", BlockInputs.capture, model, calib, batch_size)
            if needs_data(cfg, needs)
            else None
        )
        D, dense_stats = None, []
        if x is not None and (cfg.allocation != "uniform" or not cfg.sequential):
            D, dense_stats = clock.time("dense_pass_s", _dense_pass, plan, cfg, needs, x, progress)
            if cfg.sequential:  # the dense pass overwrote the buffer: recapture block 0's inputs
                x = BlockInputs.capture(model, calib, batch_size, out=x.hidden)
        block_sparsity = _block_sparsities(plan, cfg, D)
        pruned = clock.time(
            "prune_s", _prune_blocks, plan, cfg, method, x, block_sparsity, dense_stats, progress
        )
    clock.timings["total_s"] = time.perf_counter() - clock.start
    return _report(model, calib, cfg, plan, pruned, block_sparsity, D, clock.timings)


def _report(
    model: nn.Module,
    calib: CalibrationSet | None,
    cfg: PruneConfig,
    plan: Plan,
    pruned: _Pruned,
    block_sparsity: list[float],
    D: Tensor | None,
    timings: dict[str, float],
) -> PruningReport:
    """The run's report; its coverage and damping notes also as warnings, now."""
    for line in coverage_warnings(plan.coverage):
        warnings.warn(line, CoverageWarning, stacklevel=3)
    for line in pruned.warnings:
        warnings.warn(line, methods.DampingWarning, stacklevel=3)
    return PruningReport.build(
        cfg=cfg,
        calib=calib,
        model=model,
        layers=pruned.rows,
        block_sparsity=block_sparsity,
        block_scores=None if D is None else D.tolist(),
        mask_sha256=pruned.hasher.hexdigest(),
        timings=timings,
        peak_memory=peak_memory() | {"block_statistics_mib": pruned.stats_bytes / 2**20},
        environment=environment_info(),
        coverage=plan.coverage,
        warnings=coverage_warnings(plan.coverage) + pruned.warnings,
    )


class _Clock:
    """Wall time per phase, for the report."""

    def __init__(self) -> None:
        self.start, self.timings = time.perf_counter(), {}

    def time(self, name: str, fn, *args):
        t = time.perf_counter()
        out = fn(*args)
        self.timings[name] = time.perf_counter() - t
        return out


def _check_calibration(cfg: PruneConfig, calib: CalibrationSet | None) -> None:
    if needs_data(cfg) and calib is None:
        raise ConfigError(f"method={cfg.method} allocation={cfg.allocation} needs calibration data.")
    if cfg.allocation == "cwl" and len(calib.languages) < 2:
        raise ConfigError("allocation='cwl' needs calibration data in at least two languages.")


def _block_sparsities(plan: Plan, cfg: PruneConfig, D: Tensor | None) -> list[float]:
    """Each block's target sparsity: OWL's mapping of the scores D_b, or uniform."""
    if D is None or cfg.allocation == "uniform":
        return [cfg.sparsity] * len(plan.blocks)
    weights = torch.tensor(plan.params, dtype=torch.float64)
    return allocation.allocate(D, cfg.sparsity, cfg.owl_lambda, weights).tolist()


@dataclass
class _Pruned:
    """What pruning produced: the masks' fingerprint and one report row per layer."""

    hasher: MaskHasher = field(default_factory=lambda: MaskHasher())
    rows: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # e.g. a Hessian that needed more dampening
    stats_bytes: int = 0  # the most that one block's statistics held (stats.nbytes)


def _prune_blocks(
    plan: Plan,
    cfg: PruneConfig,
    method: methods.Method,
    x: BlockInputs | None,
    block_sparsity: list[float],
    dense_stats: list[dict[str, LanguageStats]],
    progress: bool,
) -> _Pruned:
    """Block by block: statistics (sequential: on the pruned prefix's outputs), masks, outputs."""
    per_row = _row_counts(plan, cfg, block_sparsity)
    needs = method.needs(cfg)
    pruned = _Pruned()
    outs = torch.empty_like(x.hidden) if x is not None and cfg.sequential else None
    for b in tqdm(range(len(plan.blocks)), desc="prune", unit="block", disable=not progress):
        stats = _block_stats(plan, cfg, needs, b, x, dense_stats)
        pruned.stats_bytes = max(pruned.stats_bytes, stats_nbytes(stats))
        release_memory()  # the statistics pass's activations are gone: hand their pages back
        _prune_block(plan, cfg, method, b, stats, block_sparsity[b], per_row, pruned)
        del stats  # the block's Hessians, if any, go now
        if outs is not None and b < len(plan.blocks) - 1:  # the last block's outputs feed nothing
            forward_block(plan.blocks[b], x, outs, index=b)
            x.hidden, outs = outs, x.hidden
        release_memory()
    return pruned


def _block_stats(
    plan: Plan,
    cfg: PruneConfig,
    needs: methods.Needs,
    b: int,
    x: BlockInputs | None,
    dense_stats: list[dict[str, LanguageStats]],
) -> dict[str, LanguageStats]:
    """What the method needs of block ``b``: nothing, the dense pass's, or one hooked pass."""
    if not needs.data:
        return {}
    if not cfg.sequential:
        return dense_stats[b]
    return collect_block_stats(
        plan.blocks[b],
        plan.linears[b],
        x,
        index=b,
        prefix=f"{plan.path}.{b}.",
        ffn=plan.ffn[b] if needs.activity else None,
        track_sums=needs.sums,
        hessian_weights=x.hessian_weights(needs.balanced) if needs.hessian else None,
    )


def _prune_block(
    plan: Plan,
    cfg: PruneConfig,
    method: methods.Method,
    b: int,
    stats: dict[str, LanguageStats],
    sparsity: float,
    per_row: dict[str, int],
    pruned: _Pruned,
) -> None:
    """Prune every prunable linear of block ``b`` with ``method`` (masks, and for SparseGPT the
    updated weights), and record each layer."""
    prefix = f"{plan.path}.{b}."
    for name, lin in plan.linears[b].items():
        is_down = plan.ffn[b] is not None and plan.ffn[b][0] == name
        layer = methods.Layer(
            prefix + name, weight_matrix(lin), stats.get(name), is_down, sparsity, per_row.get(prefix + name)
        )
        mask, extra = method.prune(layer, cfg)
        pruned.hasher.update(prefix + name, mask)
        pruned.rows.append(_layer_row(prefix + name, b, mask, sparsity) | extra)
        if extra.get("damping", cfg.percdamp) != cfg.percdamp:
            pruned.warnings.append(
                f"{prefix + name}: its Hessian needed percdamp={extra['damping']:g} (not {cfg.percdamp:g}) "
                "to be positive definite."
            )


def dense_blocks(
    plan: Plan,
    x: BlockInputs,
    ffn: bool,
    track_sums: bool,
    block_inputs: bool,
    progress: bool = False,
    linear_stats: bool = True,
):
    """Walk all blocks densely: yield (b, block-input stats or None, per-linear stats) per block.

    Each block runs once with hooks, writing its outputs into a second buffer that becomes the
    next block's input, so ``x.hidden`` is overwritten (the caller may reuse the buffer).
    """
    walk = BlockInputs(x.hidden, x.calls, x.lang_idx, x.n_langs)  # the caller's x keeps its buffer
    outs = torch.empty_like(walk.hidden)
    for b in tqdm(range(len(plan.blocks)), desc="dense stats", unit="block", disable=not progress):
        block_in = None
        if block_inputs:
            block_in = LanguageStats.zeros(walk.n_langs, walk.hidden.shape[-1], walk.hidden.device)
            block_in.add_batches(walk.hidden, walk.lang_idx)
        stats = collect_block_stats(
            plan.blocks[b],
            plan.linears[b] if linear_stats else {},  # {}: no hooks, a plain forward
            walk,
            index=b,
            prefix=f"{plan.path}.{b}.",
            ffn=plan.ffn[b] if ffn else None,
            outs=outs,
            track_sums=track_sums,
        )
        release_memory()
        yield b, block_in, stats
        walk.hidden, outs = outs, walk.hidden


def _dense_pass(
    plan: Plan, cfg: PruneConfig, needs: methods.Needs, x: BlockInputs, progress: bool
) -> tuple[Tensor | None, list[dict[str, LanguageStats]]]:
    """Per-block allocation scores D_b, and the statistics themselves when pruning uses them
    (a Hessian is never kept here: SparseGPT is sequential only)."""
    keep_stats = not cfg.sequential and needs.data
    D, kept = [], []
    walk = dense_blocks(
        plan,
        x,
        ffn=needs.activity,
        track_sums=needs.sums,
        block_inputs=cfg.allocation == "cwl",
        progress=progress,
        linear_stats=keep_stats or cfg.allocation == "owl",  # CWL alone needs only block inputs
    )
    for b, block_in, stats in walk:
        if cfg.allocation == "cwl":
            D.append(
                1.0 - allocation.cross_lingual_correlation(block_in.counts, block_in.sums, block_in.sumsq)
            )
        elif cfg.allocation == "owl":
            D.append(allocation.outlier_ratio(_WandaScores(plan.linears[b], stats), cfg.owl_m))
        if keep_stats:
            kept.append({n: s.to("cpu") for n, s in stats.items()})
    return (torch.tensor(D, dtype=torch.float64) if D else None), kept


class _WandaScores(Sequence):
    """A block's Wanda scores, computed when indexed: outlier_ratio reads them twice (mean, then
    count), and holding all of them at once would cost a block's size in float32."""

    def __init__(self, linears: dict[str, nn.Module], stats: dict[str, LanguageStats]) -> None:
        self.items = [(weight_matrix(lin), stats[name].sumsq) for name, lin in linears.items()]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Tensor:
        W, sumsq = self.items[i]
        return scores.wanda(W, scores.wanda_activation(sumsq).to(W.device))


def _row_counts(plan: Plan, cfg: PruneConfig, block_sparsity: list[float]) -> dict[str, int]:
    """Per-row prune counts for non-uniform row-wise allocation, so the overall target holds."""
    if cfg.allocation == "uniform" or cfg.comparison != "row" or cfg.structure != "unstructured":
        return {}
    names, shapes, targets = [], [], []
    for b, lins in enumerate(plan.linears):
        for name, lin in lins.items():
            names.append(f"{plan.path}.{b}.{name}")
            shapes.append(tuple(weight_matrix(lin).shape))
            targets.append(block_sparsity[b])
    return dict(zip(names, allocation.row_counts(targets, shapes, cfg.sparsity), strict=True))


def _layer_row(name: str, block: int, mask: Tensor, target: float) -> dict:
    pruned = int(torch.count_nonzero(mask))  # not mask.sum(): that makes an int64 copy of the mask
    return {
        "name": name,
        "block": block,
        "shape": list(mask.shape),
        "params": mask.numel(),
        "pruned": pruned,
        "target_sparsity": target,
        "achieved_sparsity": pruned / mask.numel(),
    }
