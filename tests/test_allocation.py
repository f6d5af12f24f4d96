"""OWL / CWL allocation as pure functions."""

from __future__ import annotations

import pytest
import torch

from mwanda.core import allocation


def test_allocate_weighted_mean_is_target_and_order():
    D = torch.tensor([0.1, 0.5, 0.3, 0.9])
    w = torch.tensor([1.0, 2.0, 1.0, 3.0])
    s = allocation.allocate(D, 0.5, 0.08, w)
    assert float((s * w).sum() / w.sum()) == pytest.approx(0.5, abs=1e-12)
    assert torch.equal(torch.argsort(s), torch.argsort(-D))  # larger D -> lower sparsity
    assert float(s.max() - s.min()) == pytest.approx(0.16)


def test_allocate_equal_scores_is_uniform():
    assert torch.allclose(
        allocation.allocate(torch.ones(5), 0.6, 0.08), torch.full((5,), 0.6, dtype=torch.float64)
    )


def test_allocate_out_of_range_names_fix():
    with pytest.raises(allocation.AllocationError, match="lower --lambda"):
        allocation.allocate(torch.tensor([0.0, 1.0]), 0.95, 0.2)


def test_outlier_ratio_pools_layers():
    a = torch.tensor([1.0, 1.0, 1.0, 1.0])
    b = torch.tensor([1.0, 1.0, 1.0, 25.0])  # pooled mean 4 -> only 25 > 5 * 4? no: 25 > 20 yes
    assert allocation.outlier_ratio([a, b], m=5.0) == pytest.approx(1 / 8)
    assert allocation.outlier_ratio([a], m=5.0) == 0.0


def _block_stats(centroids, n=10, noise=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    xs = [c + noise * torch.randn(n, c.numel(), generator=g, dtype=torch.float64) for c in centroids]
    counts = torch.tensor([float(n)] * len(xs), dtype=torch.float64)
    return counts, torch.stack([x.sum(0) for x in xs]), torch.stack([x.square().sum(0) for x in xs])


def test_cwl_correlation_high_for_shared_low_for_language_specific():
    g = torch.Generator().manual_seed(1)
    shared = torch.randn(64, generator=g, dtype=torch.float64) * 3
    same = _block_stats([shared, shared, shared])
    distinct = _block_stats([torch.randn(64, generator=g, dtype=torch.float64) * 3 for _ in range(3)])
    rho_same = allocation.cross_lingual_correlation(*same)
    rho_distinct = allocation.cross_lingual_correlation(*distinct)
    assert rho_same > 0.9 and rho_distinct < 0.3


def test_cwl_matches_direct_pearson():
    counts, sums, sumsq = _block_stats(
        [torch.arange(6.0, dtype=torch.float64), torch.ones(6, dtype=torch.float64) * 2]
    )
    mu = sums / counts.reshape(-1, 1)
    total = counts.sum()
    std = (sumsq.sum(0) / total - (sums.sum(0) / total) ** 2).sqrt()
    z = mu / std
    a, b = z[0] - z[0].mean(), z[1] - z[1].mean()
    expected = float((a * b).sum() / (a.norm() * b.norm()))
    assert allocation.cross_lingual_correlation(counts, sums, sumsq) == pytest.approx(expected, rel=1e-12)


def test_cwl_needs_two_languages():
    with pytest.raises(allocation.AllocationError, match="two languages"):
        allocation.cross_lingual_correlation(*_block_stats([torch.ones(4, dtype=torch.float64)]))


def test_row_counts_hit_target_where_floors_miss():
    shapes = [(64, 64), (128, 64), (64, 128)] * 3
    targets = [0.589, 0.589, 0.589, 0.481, 0.481, 0.481, 0.43, 0.43, 0.43]
    total = sum(a * b for a, b in shapes)
    target = sum(t * a * b for t, (a, b) in zip(targets, shapes, strict=True)) / total
    floors = sum(a * int(t * b) for t, (a, b) in zip(targets, shapes, strict=True)) / total
    k = allocation.row_counts(targets, shapes, target)
    achieved = sum(a * kl for (a, _), kl in zip(shapes, k, strict=True)) / total
    assert abs(floors - target) > 1e-3 and abs(achieved - target) <= 64 / 2 / total
    assert all(abs(kl - t * b) < 1 for kl, t, (_, b) in zip(k, targets, shapes, strict=True))
