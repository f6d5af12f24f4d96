"""The calibration passes over one block: the activations entering it (``BlockInputs``), a hooked
pass that collects per-language statistics, and a plain pass that produces the next block's
inputs. The driver (``prune.py``) and the dense statistics of the study (``study.analysis``)
walk the blocks with these.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from mwanda.core import scores
from mwanda.core.blocks import BlockCall, capture_inputs, run_block
from mwanda.core.calibration import CalibrationSet
from mwanda.core.stats import BlockStatsCollector, LanguageStats, StatsComplete

Tensor = torch.Tensor


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
        """Block 0's inputs (written into ``out`` when given: a buffer to reuse) and every block's
        call, from one forward pass per batch (``blocks.capture_inputs``)."""
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
