"""Layerwise sparsity allocation: pure tensor functions (no model, no I/O).

Both non-uniform schemes score each decoder block with a number D_b and map it to a block
sparsity s_b with OWL's formula (Yin et al. 2024, arXiv:2310.05175, Sec. 3):

    r = (D - min D) / (max D - min D) * 2 * lambda
    r = r - mean_w(r) + (1 - S)          # mean_w: parameter-weighted mean over blocks
    s_b = 1 - r_b

so blocks with larger D keep more weights, and the parameter-weighted mean of s_b is exactly S.
(OWL takes the plain mean; with equally sized blocks, as in every standard decoder, they agree.)

- OWL: D_b = share of the block's Wanda scores above M times their mean (outlier ratio).
- CWL (M-Wanda's cross-lingual layerwise sparsity, as this repository specifies it): D_b = 1 - rho_b,
  rho_b the mean pairwise Pearson correlation between per-language centroids of the block's input
  hidden states, each feature scaled by its pooled std. Low correlation = language-specific
  block = more weights kept.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from mwanda.errors import UserError

Tensor = torch.Tensor


class AllocationError(UserError, ValueError):
    """The allocation cannot be computed as asked; the message names the fix."""


def outlier_ratio(block_scores: Sequence[Tensor], m: float = 5.0) -> float:
    """Share of all scores of a block (pooled over its layers) greater than ``m`` x their mean."""
    total = sum(float(s.sum(dtype=torch.float64)) for s in block_scores)
    count = sum(s.numel() for s in block_scores)
    threshold = m * total / count
    return sum(int(torch.count_nonzero(s > threshold)) for s in block_scores) / count


def cross_lingual_correlation(counts: Tensor, sums: Tensor, sumsq: Tensor) -> float:
    """rho_b: mean pairwise Pearson correlation of per-language centroids of a block's input.

    ``counts`` [L], ``sums`` and ``sumsq`` [L, d] are per-language token counts and sums of x
    and x^2 of the block's input hidden states. Each feature is divided by its pooled std (over
    all tokens of all languages), so a few massive-activation features do not dominate. We scale
    without centering: subtracting the pooled mean would make the centroids sum to zero and
    push every correlation towards -1/(L-1).
    """
    n_langs = counts.numel()
    if n_langs < 2:
        raise AllocationError("CWL needs calibration text in at least two languages.")
    total = counts.sum()
    pooled_mean = sums.sum(dim=0) / total
    pooled_std = (sumsq.sum(dim=0) / total - pooled_mean.square()).clamp_min(0.0).sqrt()
    keep = pooled_std > 0  # constant features carry no information about languages
    centroids = (sums / counts.reshape(-1, 1))[:, keep] / pooled_std[keep]
    corr = torch.corrcoef(centroids)
    pairs = corr[torch.triu_indices(n_langs, n_langs, offset=1).unbind()]
    if not torch.isfinite(pairs).all():
        raise AllocationError(
            "a language centroid is constant across features, so its correlation is undefined; "
            "check the calibration data of that block's languages."
        )
    return float(pairs.mean())


def allocate(D: Tensor, sparsity: float, lam: float, weights: Tensor | None = None) -> Tensor:
    """Block sparsities s_b (float64) from block scores ``D`` with OWL's mapping (module doc).

    ``weights`` are the blocks' prunable parameter counts (equal if None). All D equal gives
    uniform sparsity. Raises AllocationError if a block would leave [0, 1).
    """
    D = D.double()
    w = torch.ones_like(D) if weights is None else weights.double()
    w = w / w.sum()
    spread = D.max() - D.min()
    r = torch.zeros_like(D) if spread == 0 else (D - D.min()) / spread * (2 * lam)
    r = r - (w * r).sum() + (1 - sparsity)
    s = 1 - r
    if (s < 0).any() or (s >= 1).any():
        raise AllocationError(
            f"lambda={lam} pushes block sparsities outside [0, 1) around sparsity {sparsity} "
            f"(range {float(s.min()):.3f}..{float(s.max()):.3f}); lower --lambda."
        )
    return s


def row_counts(
    layer_sparsity: Sequence[float], shapes: Sequence[tuple[int, int]], target: float
) -> list[int]:
    """Weights to prune per row, k_l, for layers of ``shapes`` [(d_out, d_in)] at ``layer_sparsity``.

    Flooring d_in * s_l in every layer (Wanda's rule) undershoots the overall target by up to a
    row's worth per layer, which on small models is far more than 1e-3. Starting from the floors,
    largest-remainder rounding adds one weight per row to the layers with the largest fractional
    parts while that brings the total closer to ``target`` x all weights, so the achieved overall
    sparsity is within half the largest d_out of the target.
    """
    exact = [s * d_in for s, (_, d_in) in zip(layer_sparsity, shapes, strict=True)]
    k = [int(e) for e in exact]
    deficit = target * sum(d_out * d_in for d_out, d_in in shapes) - sum(
        d_out * kl for (d_out, _), kl in zip(shapes, k, strict=True)
    )
    for i in sorted(range(len(k)), key=lambda i: (k[i] - exact[i], i)):
        d_out, d_in = shapes[i]
        if k[i] < d_in and abs(deficit - d_out) < abs(deficit):
            k[i] += 1
            deficit -= d_out
    return k
