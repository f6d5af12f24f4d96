"""Score formulas and masks, checked against direct implementations of the formulas."""

from __future__ import annotations

import pytest
import torch

from mwanda.core import scores


def _stats(L=3, d=8, n=(5, 5, 5), seed=0):
    g = torch.Generator().manual_seed(seed)
    xs = [torch.randn(k, d, generator=g, dtype=torch.float64) * (1 + i) for i, k in enumerate(n[:L])]
    counts = torch.tensor([float(x.shape[0]) for x in xs], dtype=torch.float64)
    sumsq = torch.stack([x.square().sum(0) for x in xs])
    sums = torch.stack([x.sum(0) for x in xs])
    return xs, counts, sumsq, sums


def test_wanda_score_is_weight_times_column_norm():
    xs, counts, sumsq, _ = _stats()
    W = torch.randn(4, 8)
    X = torch.cat(xs)
    expected = W.abs() * torch.linalg.norm(X, dim=0).float()
    torch.testing.assert_close(scores.wanda(W, scores.wanda_activation(sumsq)), expected)


def test_ria_matches_loops():
    W = torch.randn(3, 5)
    act = torch.rand(5, dtype=torch.float64) + 0.1
    got = scores.ria(W, act, a=0.5)
    for i in range(3):
        for j in range(5):
            w = abs(float(W[i, j]))
            rel = w / float(W[:, j].abs().sum()) + w / float(W[i, :].abs().sum())
            assert got[i, j].item() == pytest.approx(rel * float(act[j]) ** 0.5, rel=1e-6)


def test_ria_zero_column_gives_zero_not_nan():
    W = torch.randn(3, 4)
    W[:, 1] = 0
    assert torch.isfinite(scores.ria(W, torch.ones(4))).all()


def test_rms_cv_by_hand():
    xs, counts, sumsq, _ = _stats()
    r = torch.stack([(x.square().mean(0)).sqrt() for x in xs])
    v = scores.variation_rms_cv(scores.language_rms(counts, sumsq))
    expected = r.std(0, unbiased=False) / r.mean(0)
    torch.testing.assert_close(v, expected)


def test_anova_by_hand():
    xs, counts, sumsq, sums = _stats(n=(5, 7, 9))
    mu = torch.stack([x.mean(0) for x in xs])
    var = torch.stack([x.var(0, unbiased=False) for x in xs])
    expected = mu.var(0, unbiased=False) / var.mean(0)
    torch.testing.assert_close(scores.variation_anova(counts, sumsq, sums), expected)


def test_variation_zero_where_denominator_zero():
    counts = torch.tensor([2.0, 2.0], dtype=torch.float64)
    sumsq = torch.zeros(2, 3, dtype=torch.float64)
    assert (scores.variation_rms_cv(scores.language_rms(counts, sumsq)) == 0).all()
    assert (scores.variation_anova(counts, sumsq, torch.zeros(2, 3, dtype=torch.float64)) == 0).all()


def test_activation_probability_is_max_share_over_languages():
    counts = torch.tensor([10.0, 4.0], dtype=torch.float64)
    active = torch.tensor([[5.0, 0.0, 10.0], [1.0, 4.0, 0.0]], dtype=torch.float64)
    assert scores.activation_probability(counts, active).tolist() == [0.5, 1.0, 1.0]


def test_mwanda_activation_composes_terms():
    xs, counts, sumsq, sums = _stats(n=(5, 7, 9))
    active = torch.rand(3, 8, dtype=torch.float64) * counts.reshape(-1, 1)
    r = scores.language_rms(counts, sumsq)
    base = r.square().mean(0).sqrt()
    v = scores.variation_rms_cv(r)
    p = scores.activation_probability(counts, active)
    got = scores.mwanda_activation(counts, sumsq, sums, active, alpha=0.7, beta=0.3)
    # Same ranking as the spec's base_j: equal up to the constant sqrt(total tokens).
    expected = base * (1 + 0.7 * v) * (1 + 0.3 * p) * counts.sum().sqrt()
    torch.testing.assert_close(got, expected)


def test_mwanda_base_is_language_balanced():
    """Duplicating one language's tokens changes Wanda's norm but not M-Wanda's."""
    xs, counts, sumsq, sums = _stats(n=(5, 5, 5))
    counts2, sumsq2 = counts.clone(), sumsq.clone()
    counts2[0] *= 3
    sumsq2[0] *= 3
    a = scores.mwanda_activation(counts, sumsq, alpha=0, beta=0)
    b = scores.mwanda_activation(counts2, sumsq2, alpha=0, beta=0)
    torch.testing.assert_close(a / a.sum(), b / b.sum())
    w1, w2 = scores.wanda_activation(sumsq), scores.wanda_activation(sumsq2)
    assert not torch.allclose(w1 / w1.sum(), w2 / w2.sum())


def test_mwanda_equals_wanda_activation_bitwise_with_equal_counts():
    _, counts, sumsq, _ = _stats(n=(6, 6, 6))
    assert torch.equal(
        scores.mwanda_activation(counts, sumsq, alpha=0, beta=0), scores.wanda_activation(sumsq)
    )


def test_row_mask_counts_and_order():
    score = torch.tensor([[3.0, 1.0, 2.0, 0.5], [1.0, 1.0, 1.0, 1.0]])
    mask = scores.prune_mask(score, 0.5)
    assert mask.tolist() == [[False, True, False, True], [True, True, False, False]]  # ties: lower index


def test_row_mask_uses_floor_of_d_in_times_s():
    mask = scores.prune_mask(torch.rand(7, 10), 0.55)
    assert (mask.sum(1) == 5).all()


def test_layer_comparison_prunes_global_lowest():
    score = torch.tensor([[0.1, 0.2], [5.0, 6.0]])
    assert scores.prune_mask(score, 0.5, comparison="layer").tolist() == [[True, True], [False, False]]


@pytest.mark.parametrize("nm", ["2:4", "4:8"])
def test_nm_mask_prunes_n_smallest_per_group(nm):
    n, m = map(int, nm.split(":"))
    score = torch.rand(6, 32)
    mask = scores.prune_mask(score, n / m, structure=nm)
    groups_mask, groups_score = mask.reshape(6, -1, m), score.reshape(6, -1, m)
    assert (groups_mask.sum(-1) == n).all()
    kept_min = torch.where(groups_mask, torch.inf, groups_score).amin(-1)
    pruned_max = torch.where(groups_mask, groups_score, -torch.inf).amax(-1)
    assert (pruned_max <= kept_min).all()


def test_nm_needs_divisible_width():
    with pytest.raises(ValueError, match="groups of 4"):
        scores.prune_mask(torch.rand(2, 6), 0.5, structure="2:4")


@pytest.mark.parametrize("comparison", ["row", "layer"])
def test_chunked_sort_gives_the_unchunked_mask(monkeypatch, comparison):
    g = torch.Generator().manual_seed(0)
    score = torch.randint(0, 5, (37, 24), generator=g).float()  # many ties: stable order matters
    ref = torch.zeros_like(score, dtype=torch.bool)
    if comparison == "row":
        ref.scatter_(1, torch.sort(score, dim=1, stable=True).indices[:, :12], True)
    else:
        ref.view(-1)[torch.sort(score.view(-1), stable=True).indices[: int(score.numel() * 0.5)]] = True
    monkeypatch.setattr(scores, "SORT_CHUNK", 50)  # two rows per sort
    assert torch.equal(scores.prune_mask(score, 0.5, comparison=comparison), ref)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_lowest_selects_what_a_stable_sort_selects(dtype):
    """lowest finds the k-th value instead of sorting; every k must still give the first k of a
    stable ascending sort: ties (more than places left), -0.0 next to 0.0, +-inf, NaN (sorted last)."""
    g = torch.Generator().manual_seed(0)
    score = torch.randint(0, 4, (40, 30), generator=g).to(dtype)
    score[0], score[1] = -0.0, torch.tensor([0.0, -0.0] * 15)
    score[2:6].masked_fill_(torch.rand(4, 30, generator=g) > 0.7, float("inf"))
    score[6:10].masked_fill_(torch.rand(4, 30, generator=g) > 0.7, -float("inf"))
    score[10:20].masked_fill_(torch.rand(10, 30, generator=g) > 0.5, float("nan"))
    score[20] = float("nan")
    for k in range(-1, 32):
        ref = torch.zeros_like(score, dtype=torch.bool)
        if k > 0:
            ref.scatter_(1, torch.sort(score, dim=1, stable=True).indices[:, :k], True)
        assert torch.equal(scores.lowest(score, k), ref), k


def test_scores_do_not_modify_weights():
    W = torch.randn(4, 6, dtype=torch.float16)
    before = W.clone()
    scores.wanda(W, torch.rand(6))
    scores.ria(W, torch.rand(6))
    assert torch.equal(W, before)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_all_finite_sees_nan_and_inf_and_not_an_overflowing_sum(dtype):
    big = torch.full((64, 64), torch.finfo(dtype).max / 2, dtype=dtype)
    assert not torch.isfinite(big.sum())  # the fast path's sum overflows: the exact check decides
    assert scores.all_finite(big)
    assert scores.all_finite(torch.zeros(0, 3, dtype=dtype))
    for bad in (float("nan"), float("inf"), -float("inf")):
        x = torch.ones(5, 7, dtype=dtype)
        x[3, 2] = bad
        assert not scores.all_finite(x), bad
    mixed = torch.ones(4, dtype=dtype)
    mixed[0], mixed[1] = float("inf"), -float("inf")  # the sum is NaN, as it must be
    assert not scores.all_finite(mixed)
