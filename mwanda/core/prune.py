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

import ctypes
import ctypes.util
import functools
import hashlib
import math
import os
import resource
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
    BlockCall,
    ModelStructureError,
    block_device,
    block_linears,
    capture_inputs,
    ffn_pair,
    find_blocks,
    run_block,
    unprunable_weights,
    weight_matrix,
)
from mwanda.core.calibration import CalibrationSet
from mwanda.core.config import ConfigError, PruneConfig
from mwanda.core.report import PruningReport, environment_info
from mwanda.core.stats import BlockStatsCollector, LanguageStats, StatsComplete
from mwanda.core.stats import nbytes as stats_nbytes
from mwanda.errors import MwandaWarning

Tensor = torch.Tensor


# Blocks whose weight matrices mwanda cannot prune (fused expert tensors, say) are refused
# when those hold more than this share of the block's weights; a smaller share is reported.
MAX_UNPRUNABLE_SHARE = 0.10
# A run that prunes less than this share of the blocks' weights (e.g. through --exclude) warns.
MIN_PRUNED_SHARE = 0.90


class CoverageWarning(MwandaWarning):
    """Part of the model's weights stays dense (excluded or unprunable layers)."""


@dataclass
class _Plan:
    """What the driver will touch: linears per block, FFN pairs, parameter counts."""

    path: str
    blocks: nn.ModuleList
    linears: list[dict[str, nn.Module]]
    ffn: list[tuple[str, str] | None]
    params: list[int] = field(init=False)
    coverage: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.params = [sum(lin.weight.numel() for lin in lins.values()) for lins in self.linears]


def make_plan(model: nn.Module, cfg: PruneConfig) -> _Plan:
    """Find blocks and their prunable linears; fail before any compute on what cannot work."""
    path, blocks = find_blocks(model)
    linears = [block_linears(blk, f"{path}.{i}.", cfg.include, cfg.exclude) for i, blk in enumerate(blocks)]
    if not any(linears):
        raise ModelStructureError(
            f"no prunable linear (nn.Linear, Conv1D) inside {path}.* matches include={list(cfg.include)} "
            f"exclude={list(cfg.exclude)}; loosen the patterns."
        )
    _check_not_offloaded(path, linears)
    check_finite(model)
    plan = _Plan(path, blocks, linears, [ffn_pair(blk) for blk in blocks])
    plan.coverage = _coverage(plan)
    for b, lins in enumerate(linears):
        for name, lin in lins.items():
            _check_layer(f"{path}.{b}.{name}", weight_matrix(lin), cfg)
    return plan


def _coverage(plan: _Plan) -> dict:
    """Share of the blocks' weight matrices that will be pruned; refuses unprunable majorities."""
    total = sum(p.numel() for blk in plan.blocks for p in blk.parameters() if p.ndim >= 2)
    foreign = {
        f"{plan.path}.{b}.{n}": list(shape)
        for b, blk in enumerate(plan.blocks)
        for n, shape in unprunable_weights(blk).items()
    }
    foreign_params = sum(math.prod(shape) for shape in foreign.values())
    if total and foreign_params / total > MAX_UNPRUNABLE_SHARE:
        names = ", ".join(f"{n} {shape}" for n, shape in list(foreign.items())[:4])
        raise ModelStructureError(
            f"{foreign_params / total:.0%} of the blocks' weights are in tensors mwanda cannot prune "
            f"({names}{', ...' if len(foreign) > 4 else ''}): it prunes nn.Linear and Conv1D layers only. "
            "Mixture-of-experts models whose experts are fused 3-D tensors are not supported yet; use a "
            "dense model."
        )
    fraction = sum(plan.params) / total if total else 0.0
    return {
        "block_weights": total,
        "pruned_layer_weights": sum(plan.params),
        "fraction": fraction,
        "unprunable": foreign,
    }


def _check_layer(name: str, W: Tensor, cfg: PruneConfig) -> None:
    """A layer fits the N:M structure (checked before any compute)."""
    if cfg.nm is not None and W.shape[1] % cfg.nm[1]:
        raise ModelStructureError(
            f"{name} has {W.shape[1]} inputs, not a multiple of {cfg.nm[1]}, so {cfg.structure} groups "
            f"do not fit; keep it dense with --exclude '{name}' or prune unstructured."
        )


def _check_not_offloaded(path: str, linears: list[dict[str, nn.Module]]) -> None:
    """Weights that accelerate offloaded (device_map with "disk" or CPU offload) sit on the meta
    device and are paged in per forward pass: pruning them in place would change nothing."""
    offloaded = sorted(
        {f"{path}.{b}" for b, lins in enumerate(linears) for lin in lins.values() if lin.weight.is_meta}
    )
    if offloaded:
        raise ModelStructureError(
            f"{len(offloaded)} block(s) are offloaded by device_map ({', '.join(offloaded[:3])}"
            f"{', ...' if len(offloaded) > 3 else ''}): mwanda prunes weights in place and cannot write "
            "them back to the offloaded store. Load the model without offload (more GPU or CPU memory, "
            "or --device cpu)."
        )


def check_finite(model: nn.Module) -> None:
    """Every parameter is finite: a NaN weight would make scores, masks and outputs meaningless
    (``scores.all_finite``: no temporary of the tensor's size)."""
    for name, p in model.named_parameters():
        if p.device.type != "meta" and p.numel() and not scores.all_finite(p.detach()):
            raise ModelStructureError(
                f"parameter {name} holds NaN or Inf values: the model is damaged; reload or re-download it."
            )


def coverage_warnings(coverage: dict) -> list[str]:
    """Loud lines for a run that leaves much of the model's weights unpruned."""
    out = []
    if coverage["fraction"] < MIN_PRUNED_SHARE:
        out.append(
            f"only {coverage['fraction']:.1%} of the blocks' weights are in pruned layers "
            f"({coverage['pruned_layer_weights']:,} of {coverage['block_weights']:,}); the model's overall "
            "sparsity is far below the target."
        )
    if coverage["unprunable"]:
        out.append(f"weights mwanda cannot prune stay dense: {', '.join(coverage['unprunable'])}.")
    return out


def method_needs(cfg: PruneConfig) -> methods.Needs:
    """What ``cfg.method`` reads from a calibration pass (see ``methods.Needs``)."""
    return methods.get(cfg).needs(cfg)


@dataclass
class BlockInputs:
    """The calibration activations entering the current block, with what replaying any block
    needs: ``hidden`` [N, T, d], ``calls[b][batch]`` block b's other arguments (each block its own:
    sliding-window and global layers differ), and per batch the sequences' languages."""

    hidden: Tensor
    calls: list[list[BlockCall]]
    lang_idx: list[Tensor]
    n_langs: int

    @classmethod
    def capture(cls, model: nn.Module, calib: CalibrationSet, batch_size: int, out: Tensor | None = None):
        """Run the model up to block 0 (writing into ``out`` when given: a buffer to reuse)."""
        hidden, calls = capture_inputs(model, calib.input_ids, batch_size, out=out)
        return cls(hidden, calls, list(calib.lang_index().split(batch_size)), len(calib.languages))

    def hessian_weights(self, balanced: bool) -> Tensor:
        """Per-language weights of the Hessian sum, fixed before the pass: 1 (every token alike),
        or w_l = N / (L n_l) (every language alike) from the calibration set's token counts."""
        idx = torch.cat(self.lang_idx)
        counts = torch.bincount(idx, minlength=self.n_langs).to(torch.float64) * self.hidden.shape[1]
        return scores.balanced_weights(counts) if balanced else torch.ones_like(counts)

    def batches(self, index: int):
        """(start, end, call, language index) per batch, with block ``index``'s calls."""
        start = 0
        for call, idx in zip(self.calls[index], self.lang_idx, strict=True):
            yield start, start + len(idx), call, idx
            start += len(idx)


def collect_block_stats(
    block: nn.Module,
    plan_linears: dict[str, nn.Module],
    x: BlockInputs,
    *,
    index: int,
    prefix: str,
    ffn: tuple[str, str] | None = None,
    outs: Tensor | None = None,
    track_sums: bool = False,
    hessian_weights: Tensor | None = None,
) -> dict[str, LanguageStats]:
    """One forward pass of block ``index`` with hooks; writes its outputs into ``outs`` if given,
    and without ``outs`` stops each batch once the statistics are complete (``StatsComplete``).
    ``hessian_weights`` [L]: also collect each input's Hessian (see ``stats.add_hessian``)."""
    hooked = dict(plan_linears)
    if ffn is not None and ffn[0] in hooked:
        hooked.setdefault(ffn[1], dict(block.named_modules())[ffn[1]])
    collector = BlockStatsCollector(
        hooked,
        x.n_langs,
        ffn if ffn and ffn[0] in plan_linears else None,
        track_sums=track_sums,
        hessian_weights=hessian_weights,
        stop_early=outs is None,
    )
    with collector:
        for start, end, call, idx in x.batches(index):
            collector.begin_batch(idx)
            try:
                y = run_block(block, x.hidden[start:end], call)
            except StatsComplete:
                continue
            if outs is not None:
                outs[start:end] = y.to(outs.device)
    stats = collector.finish(prefix)
    return {name: stats[name] for name in plan_linears}


def forward_block(block: nn.Module, x: BlockInputs, outs: Tensor, *, index: int) -> None:
    """``outs`` = block ``index``(inputs), batch by batch (no hooks)."""
    for start, end, call, _ in x.batches(index):
        outs[start:end] = run_block(block, x.hidden[start:end], call).to(outs.device)


class MaskHasher:
    """SHA-256 over all masks in pruning order (layer name + packed bits): a run's fingerprint."""

    def __init__(self) -> None:
        self._h = hashlib.sha256()

    def update(self, name: str, mask: Tensor) -> None:
        self._h.update(name.encode() + b"\0" + repr(tuple(mask.shape)).encode())
        self._h.update(np.packbits(mask.cpu().numpy().reshape(-1)).tobytes())

    def hexdigest(self) -> str:
        return self._h.hexdigest()


def needs_data(cfg: PruneConfig) -> bool:
    """Every method but uniform magnitude pruning reads calibration activations."""
    return method_needs(cfg).data or cfg.allocation != "uniform"


def prune_model(
    model: nn.Module,
    calib: CalibrationSet | None,
    cfg: PruneConfig,
    batch_size: int = 1,
    progress: bool = True,
) -> PruningReport:
    """Prune ``model`` in place as ``cfg`` says and return the report.

    Phases: plan (what to prune, checked), capture (block 0's calibration inputs), allocate
    (block sparsities; OWL/CWL need a dense pass), then block by block: statistics, masks, and
    the pruned block's outputs as the next block's inputs.

    ``calib`` may be None only for uniform magnitude pruning, which needs no data.
    ``batch_size``: calibration sequences per forward pass. 1, as Wanda's reference, keeps the
    per-batch activations (batch x seqlen x FFN width) small next to the two [N, T, d] buffers;
    larger batches are faster on CPU. Statistics are exact sums either way.
    """
    clock = _Clock()
    plan = make_plan(model, cfg)
    _check_calibration(cfg, calib)
    model.eval()
    with torch.no_grad():
        x = (
            clock.time("capture_s", BlockInputs.capture, model, calib, batch_size)
            if needs_data(cfg)
            else None
        )
        D, dense_stats = None, []
        if x is not None and (cfg.allocation != "uniform" or not cfg.sequential):
            D, dense_stats = clock.time("dense_pass_s", _dense_pass, plan, cfg, x, progress)
            if cfg.sequential:  # the dense pass overwrote the buffer: recapture block 0's inputs
                x = BlockInputs.capture(model, calib, batch_size, out=x.hidden)
        block_sparsity = _block_sparsities(plan, cfg, D)
        pruned = clock.time("prune_s", _prune_blocks, plan, cfg, x, block_sparsity, dense_stats, progress)
    clock.timings["total_s"] = time.perf_counter() - clock.start
    for line in coverage_warnings(plan.coverage):
        warnings.warn(line, CoverageWarning, stacklevel=2)
    for line in pruned.warnings:
        warnings.warn(line, methods.DampingWarning, stacklevel=2)
    return PruningReport.build(
        cfg=cfg,
        calib=calib,
        model=model,
        layers=pruned.rows,
        block_sparsity=block_sparsity,
        block_scores=None if D is None else D.tolist(),
        mask_sha256=pruned.hasher.hexdigest(),
        timings=clock.timings,
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


def _block_sparsities(plan: _Plan, cfg: PruneConfig, D: Tensor | None) -> list[float]:
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


def _prune_blocks(plan, cfg, x: BlockInputs | None, block_sparsity, dense_stats, progress) -> _Pruned:
    """Block by block: statistics (sequential: on the pruned prefix's outputs), masks, outputs."""
    per_row = _row_counts(plan, cfg, block_sparsity)
    pruned = _Pruned()
    outs = torch.empty_like(x.hidden) if x is not None and cfg.sequential else None
    for b in tqdm(range(len(plan.blocks)), desc="prune", unit="block", disable=not progress):
        stats = _block_stats(plan, cfg, b, x, dense_stats)
        pruned.stats_bytes = max(pruned.stats_bytes, stats_nbytes(stats))
        release_memory()  # the statistics pass's activations are gone: hand their pages back
        _prune_block(plan, cfg, b, stats, block_sparsity[b], per_row, pruned)
        del stats  # the block's Hessians, if any, go now
        if outs is not None and b < len(plan.blocks) - 1:  # the last block's outputs feed nothing
            forward_block(plan.blocks[b], x, outs, index=b)
            x.hidden, outs = outs, x.hidden
        release_memory()
    return pruned


def _block_stats(plan, cfg, b: int, x: BlockInputs | None, dense_stats) -> dict[str, LanguageStats]:
    """What the method needs of block ``b``: nothing, the dense pass's, or one hooked pass."""
    needs = method_needs(cfg)
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


def _prune_block(plan, cfg, b: int, stats, sparsity: float, per_row: dict, pruned: _Pruned) -> None:
    """Prune every prunable linear of block ``b`` with ``cfg.method`` (masks, and for SparseGPT
    the updated weights), and record each layer."""
    method = methods.get(cfg)
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
    plan: _Plan,
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


def _dense_pass(plan: _Plan, cfg: PruneConfig, x: BlockInputs, progress: bool):
    """Per-block allocation scores D_b, and the statistics themselves when pruning uses them."""
    needs = method_needs(cfg)  # a Hessian is never kept here: sparsegpt is sequential only
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


def _row_counts(plan: _Plan, cfg: PruneConfig, block_sparsity: list[float]) -> dict[str, int]:
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


@functools.cache
def _libc_malloc_trim():
    """glibc's malloc_trim, or None (musl, macOS, Windows)."""
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    return getattr(libc, "malloc_trim", None)


def release_memory() -> None:
    """Return freed memory to the OS between blocks.

    glibc keeps the pages of freed large tensors in its heap (they count as resident memory and,
    fragmented, make a later block grow the heap again: +40-70 MiB on a 110M model); CUDA's caching
    allocator keeps its blocks too. Costs about a millisecond per call on CPU.
    """
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    trim = _libc_malloc_trim()
    if trim is not None:
        trim(0)


def peak_memory() -> dict[str, float]:
    """Peak resident memory of this process (MiB) and, on CUDA, peak allocated GPU memory."""
    out = {"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if torch.cuda.is_available():
        out["peak_cuda_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return out


# Share of the free memory that the per-batch activations of ``--batch-size auto`` may use: the
# rest is for the statistics, the scores of one layer and whatever else runs on the machine.
AUTO_BATCH_SHARE = 0.25
# And at most this many sequences: beyond it a CPU gains nothing and holds more. Measured (2 cores,
# mwanda, 64 x 256 tokens, tiny-ml-llama): 3.1 s at batch 1, 2.3 s at 4, 2.5 s at 8, 2.8 s at 16,
# 3.6 s at 64; the 110M benchmark model: 16.5 s at 1, 14.2 s at 8.
AUTO_BATCH_MAX = 8


def free_memory(device: torch.device) -> int:
    """Bytes free for new tensors on ``device``: CUDA's own count, else the OS's MemAvailable."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            fields = dict(line.split(":", 1) for line in fh)
        return int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):  # not Linux: the physical memory, halved
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2


def activation_bytes(model: nn.Module, seqlen: int) -> int:
    """Bytes one calibration sequence adds to a block's forward pass: hidden states, q/k/v and
    outputs (6 x d), the FFN's gate, up and activation (3 x its width) and the attention scores
    (heads x seqlen, when the kernel materialises them), in the model's dtype."""
    cfg = model.config
    d = getattr(cfg, "hidden_size", None) or cfg.n_embd
    ffn = getattr(cfg, "intermediate_size", None) or getattr(cfg, "ffn_dim", None) or 4 * d
    heads = getattr(cfg, "num_attention_heads", None) or getattr(cfg, "n_head", 1)
    itemsize = next(model.parameters()).element_size()
    return seqlen * (6 * d + 3 * ffn + heads * seqlen) * itemsize


def auto_batch_size(model: nn.Module, nsamples: int, seqlen: int, share: float = AUTO_BATCH_SHARE) -> int:
    """The largest batch (1..min(nsamples, AUTO_BATCH_MAX)) whose activations fit ``share`` of the
    free memory of the device that computes block 0. Masks do not depend on the batch size
    (tested); speed and memory do."""
    _, blocks = find_blocks(model)
    budget = share * free_memory(block_device(blocks[0]))
    return max(1, min(nsamples, AUTO_BATCH_MAX, int(budget // activation_bytes(model, seqlen))))
