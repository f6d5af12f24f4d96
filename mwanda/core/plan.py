"""The plan of a prune: which blocks and linears the driver will touch, checked before any
compute (structure, N:M fit, offloaded or damaged weights, how much of the model is covered).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from mwanda.core import scores
from mwanda.core.blocks import (
    ModelStructureError,
    block_linears,
    ffn_pair,
    find_blocks,
    unprunable_weights,
    weight_matrix,
)
from mwanda.core.config import PruneConfig
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
class Plan:
    """What the driver will touch: linears per block, FFN pairs, parameter counts."""

    path: str
    blocks: nn.ModuleList
    linears: list[dict[str, nn.Module]]
    ffn: list[tuple[str, str] | None]
    params: list[int] = field(init=False)
    coverage: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.params = [sum(lin.weight.numel() for lin in lins.values()) for lins in self.linears]


def make_plan(model: nn.Module, cfg: PruneConfig) -> Plan:
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
    plan = Plan(path, blocks, linears, [ffn_pair(blk) for blk in blocks])
    plan.coverage = _coverage(plan)
    for b, lins in enumerate(linears):
        for name, lin in lins.items():
            _check_layer(f"{path}.{b}.{name}", weight_matrix(lin), cfg)
    return plan


def _coverage(plan: Plan) -> dict:
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
