"""Why Wanda helps on one model and not on another: activation outliers, mask overlap, ties.

Wanda's premise (Sun et al., 2024, §3) is that LLMs have a few input features with very large
activation norms ‖X_j‖ (the emergent outlier features of Dettmers et al., 2022): weighting |W_ij|
by ‖X_j‖ then keeps the weights those features read, which magnitude pruning would drop. Where
the norms are flat, the Wanda and magnitude masks nearly coincide and calibration adds only noise.
These functions measure both sides per layer, from the dense statistics of ``analysis``, and the
ties that quantized weights give magnitude pruning.
"""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import torch

from mwanda.core import scores
from mwanda.core.blocks import weight_matrix

Tensor = torch.Tensor

# A feature is an outlier when its norm exceeds this multiple of the layer's median norm.
OUTLIER_MULTIPLE = 6.0


def norm_outliers(norms: Tensor, multiple: float = OUTLIER_MULTIPLE) -> dict[str, float]:
    """Spread of the feature norms ‖X_j‖ [d_in] of one layer: max/median ratio, (Pearson) kurtosis
    and the share of features above ``multiple`` × the median."""
    x = norms.double()
    median = float(x.median())
    centred = x - x.mean()
    kurtosis = float((centred**4).mean() / (centred**2).mean().clamp_min(1e-300) ** 2)
    return {
        "max_over_median": float(x.max()) / median if median > 0 else float("inf"),
        "kurtosis": kurtosis,
        "share_outliers": float((x > multiple * median).double().mean()),
    }


def row_mask(score: Tensor, sparsity: float) -> Tensor:
    """True where a weight is pruned: the int(d_in · sparsity) lowest scores of each row (ties
    broken by position, as a stable sort does)."""
    k = int(score.shape[1] * sparsity)
    order = score.argsort(dim=1, stable=True)[:, :k]
    return torch.zeros_like(score, dtype=torch.bool).scatter_(1, order, True)


def mask_overlap(W: Tensor, norms: Tensor, sparsity: float) -> float:
    """Share of the weights magnitude pruning removes that Wanda removes too (1: the same mask)."""
    magnitude = row_mask(W.abs(), sparsity)
    wanda = row_mask(scores.wanda(W, norms.to(W.dtype)), sparsity)
    return float((magnitude & wanda).sum()) / max(int(magnitude.sum()), 1)


def magnitude_ties(W: Tensor, sparsity: float) -> dict[str, float]:
    """How quantized weights tie under magnitude pruning at ``sparsity`` (per row): the mean number
    of distinct |W| per row, the share of rows whose threshold falls inside a run of equal values
    (the mask then depends on how ties are broken) and the share of weights in such runs."""
    a = W.abs().sort(dim=1).values
    k = int(W.shape[1] * sparsity)
    distinct = (a[:, 1:] != a[:, :-1]).sum(1) + 1
    if not 0 < k < W.shape[1]:
        tied = torch.zeros(W.shape[0], dtype=torch.bool)
        ambiguous = torch.zeros(W.shape[0], dtype=torch.long)
    else:
        tied = a[:, k - 1] == a[:, k]
        ambiguous = torch.where(tied, (a == a[:, k - 1 : k]).sum(1), 0)
    return {
        "distinct_per_row": float(distinct.double().mean()),
        "rows_tied_at_threshold": float(tied.double().mean()),
        "weights_in_tied_runs": float(ambiguous.sum()) / W.numel(),
    }


def layer_table(model, linears: list[dict], sparsity: float = 0.5) -> pd.DataFrame:
    """Per block and linear: outlier measures of ‖X_j‖, Wanda/magnitude mask overlap and
    magnitude ties, from the dense statistics ``linears`` (``analysis.DenseStatistics.linears``)."""
    from mwanda.core.blocks import find_blocks

    _, blocks = find_blocks(model)
    rows = []
    for b, layer_stats in enumerate(linears):
        modules = dict(blocks[b].named_modules())
        for name, s in layer_stats.items():
            W = weight_matrix(modules[name]).float()
            norms = scores.wanda_activation(s.sumsq).float()
            rows.append(
                {"block": b, "layer": name}
                | norm_outliers(norms)
                | {"mask_overlap": mask_overlap(W, norms, sparsity)}
                | magnitude_ties(W, sparsity)
            )
    return pd.DataFrame(rows)


def layer_diagnostics(cfg, sparsity: float = 0.5, results_dir: str | Path | None = None) -> pd.DataFrame:
    """``layer_table`` of ``cfg``'s dense model over its calibration set: computed once, then read
    from ``<results_dir>/diagnostics/<statistics key>-<sparsity>.csv`` (so notebook 09 renders from
    cached results without the model)."""
    from mwanda.io import atomic_write_text
    from mwanda.study import experiments, shipped

    results_dir = experiments.check_results_dir(results_dir or experiments.RESULTS_DIR)
    relative = Path("diagnostics") / f"{experiments.statistics_key(cfg)}-{sparsity:g}.csv"
    found = shipped.find_file(relative, results_dir)  # computed here, else committed
    if found is not None:
        return pd.read_csv(found)
    path = results_dir / relative
    stats = experiments.dense_statistics(cfg, results_dir)
    model, _ = experiments.dense_model(cfg)
    table = layer_table(model, stats.linears, sparsity)
    buffer = io.StringIO()
    table.to_csv(buffer, index=False, lineterminator="\n")
    atomic_write_text(path, buffer.getvalue())
    return pd.read_csv(io.StringIO(buffer.getvalue()))  # the same floats whether computed or read
