"""Pruning scores and masks: pure tensor functions (no model, no I/O).

Conventions: ``W`` is a linear layer's weight, [d_out, d_in]; ``j`` indexes input features.
Activation statistics arrive as per-language sums accumulated in float64 (see ``stats.py``):

- ``counts``  [L]        tokens seen per language, n_l
- ``sumsq``   [L, d_in]  sum over language-l tokens of x_tj^2
- ``sums``    [L, d_in]  sum over language-l tokens of x_tj
- ``active``  [L, d_in]  tokens on which FFN neuron j is active (down-projection inputs only)

Scores are returned in float32 (as Wanda computes them); higher score = more important.

References: Wanda, Sun et al. 2024 (arXiv:2306.11695), score |W_ij| * ||X_j||_2.
RIA, Zhang et al. 2024 (arXiv:2403.03710), relative importance times activation^a.
M-Wanda, Choenni & Titov 2025: its exact equations were not available to us; ``mwanda_activation``
implements this repository's specification of it (docs/method.md).
"""

from __future__ import annotations

import torch

Tensor = torch.Tensor


def all_finite(t: Tensor) -> bool:
    """No NaN or Inf in ``t``, without a temporary of its size on the usual path: the sum in
    ``t``'s own dtype (NaN and Inf propagate through it; ~30x faster than a float64 sum, which
    costs seconds over a 7B model's weights and scores). Only when that sum is not finite (a NaN
    or Inf, or finite values whose sum overflows the dtype) does the elementwise check decide."""
    return bool(torch.isfinite(t.sum())) or bool(torch.isfinite(t).all())


def magnitude(W: Tensor) -> Tensor:
    """|W_ij|."""
    return W.detach().to(torch.float32, copy=True).abs_()  # one float32 buffer whatever W's dtype


def wanda_activation(sumsq: Tensor) -> Tensor:
    """||X_j||_2 over all calibration tokens, from per-language sums of squares [L, d_in]."""
    return sumsq.sum(dim=0).sqrt()


def wanda(W: Tensor, act_norm: Tensor) -> Tensor:
    """Wanda: |W_ij| * ||X_j||_2 (``act_norm`` is [d_in], any float dtype)."""
    return magnitude(W).mul_(act_norm.float().reshape(1, -1))  # in place: one [d_out, d_in] buffer


def ria(W: Tensor, act: Tensor, a: float = 0.5) -> Tensor:
    """RIA: (|W_ij| / sum_i' |W_i'j| + |W_ij| / sum_j' |W_ij'|) * act_j^a.

    ``act`` is ||X_j||_2 for plain RIA, or M-Wanda's language-aware activation term.
    All-zero rows or columns contribute 0 instead of NaN.
    """
    absw = magnitude(W)
    col = absw.sum(dim=0, keepdim=True)  # sum over outputs i' for each input j
    row = absw.sum(dim=1, keepdim=True)  # sum over inputs j' for each output i
    rel = _safe_div(absw, col) + _safe_div(absw, row)
    return rel * act.float().reshape(1, -1).pow(a)


def language_rms(counts: Tensor, sumsq: Tensor) -> Tensor:
    """r_lj = sqrt(sum_{t in l} x_tj^2 / n_l): per-language RMS of feature j, [L, d_in]."""
    return (sumsq / counts.reshape(-1, 1)).sqrt()


def variation_rms_cv(r: Tensor) -> Tensor:
    """V_j = std_l r_lj / mean_l r_lj (population std over languages); 0 where the mean is 0."""
    return _safe_div(r.std(dim=0, correction=0), r.mean(dim=0))


def variation_anova(counts: Tensor, sumsq: Tensor, sums: Tensor) -> Tensor:
    """V_j = Var_l(mu_lj) / mean_l sigma2_lj: between- over within-language variance of x_j.

    mu_lj and sigma2_lj are language l's mean and population variance of feature j; Var_l is
    the population variance over languages (each language weighted equally).
    """
    n = counts.reshape(-1, 1)
    mu = sums / n
    sigma2 = (sumsq / n - mu.square()).clamp_min(0.0)  # clamp: rounding can give -1e-17
    return _safe_div(mu.var(dim=0, correction=0), sigma2.mean(dim=0))


def activation_probability(counts: Tensor, active: Tensor) -> Tensor:
    """P_j = max_l p_lj, with p_lj the share of language-l tokens on which neuron j is active."""
    return (active / counts.reshape(-1, 1)).amax(dim=0)


def balanced_weights(counts: Tensor) -> Tensor:
    """w_l = N / (L n_l): per-language token weights under which every language weighs the same
    (sum_l w_l n_l = N). Exactly 1.0 for every language when the counts are equal."""
    return counts.sum() / (counts.numel() * counts)


def mwanda_activation(
    counts: Tensor,
    sumsq: Tensor,
    sums: Tensor | None = None,
    active: Tensor | None = None,
    alpha: float = 1.0,
    beta: float = 1.0,
    variation: str = "rms_cv",
) -> Tensor:
    """M-Wanda's activation term base_j * (1 + alpha V_j) * (1 + beta P_j), [d_in] float64.

    base_j = sqrt(mean_l r_lj^2) is a language-balanced norm: every language weighs the same
    whatever its token count. We compute it times the constant sqrt(N) (N = all tokens), as
    sqrt(sum_l w_l * sumsq_lj) with w_l = N / (L n_l): a per-layer constant factor changes no
    ranking, and with equal counts w_l is exactly 1.0, so base_j is bit-identical to Wanda's
    ||X_j||_2 and alpha = beta = 0 reproduces Wanda's masks bit for bit.
    P_j is 0 (the factor is 1) for layers that are not an FFN down-projection (``active is None``).
    """
    act = (sumsq * balanced_weights(counts).reshape(-1, 1)).sum(dim=0).sqrt()
    return _times_language_terms(act, counts, sumsq, sums, active, alpha, beta, variation)


def language_scale(
    counts: Tensor,
    sumsq: Tensor,
    sums: Tensor | None = None,
    active: Tensor | None = None,
    alpha: float = 1.0,
    beta: float = 1.0,
    variation: str = "rms_cv",
) -> Tensor:
    """s_j = (1 + alpha V_j) * (1 + beta P_j), [d_in] float64: M-Wanda's language terms without
    the norm, for methods with a saliency of their own (``sparsegpt --language-aware``, this
    repository's extension). All ones when alpha = beta = 0."""
    ones = torch.ones(sumsq.shape[-1], dtype=sumsq.dtype, device=sumsq.device)
    return _times_language_terms(ones, counts, sumsq, sums, active, alpha, beta, variation)


def _times_language_terms(act, counts, sumsq, sums, active, alpha, beta, variation) -> Tensor:
    """act * (1 + alpha V_j), then * (1 + beta P_j): one order of operations for every caller,
    so M-Wanda's scores stay bit-identical whoever computes them."""
    if alpha:
        act = act * (1 + alpha * variation_of(counts, sumsq, sums, variation))
    if beta and active is not None:
        act = act * (1 + beta * activation_probability(counts, active))
    return act


def variation_of(counts: Tensor, sumsq: Tensor, sums: Tensor | None, variation: str) -> Tensor:
    """V_j by name: ``rms_cv`` (from per-language RMS) or ``anova`` (needs per-language sums)."""
    if variation == "rms_cv":
        return variation_rms_cv(language_rms(counts, sumsq))
    if variation == "anova":
        if sums is None:
            raise ValueError("variation='anova' needs per-language sums of x.")
        return variation_anova(counts, sumsq, sums)
    raise ValueError(f"unknown variation {variation!r}; use 'rms_cv' or 'anova'.")


def prune_mask(
    score: Tensor,
    sparsity: float,
    structure: str = "unstructured",
    comparison: str = "row",
    per_row: int | None = None,
) -> Tensor:
    """Boolean mask, True = prune. Ties keep index order (stable ascending sort).

    - unstructured, row: in every output row the int(d_in * s) lowest scores (Wanda's reference),
      or exactly ``per_row`` of them when given (see allocation.row_counts).
    - unstructured, layer: the int(d_out * d_in * s) lowest scores of the whole layer.
    - "n:m": in every row, the n lowest scores of each group of m consecutive inputs.
    """
    d_out, d_in = score.shape
    if structure != "unstructured":
        n, m = (int(v) for v in structure.split(":"))
        if d_in % m:
            raise ValueError(f"{d_in} input features are not divisible into groups of {m} for {structure}.")
        groups = score.reshape(d_out, d_in // m, m)
        return lowest(groups, n).reshape(d_out, d_in)
    if comparison == "layer":
        return lowest(score.reshape(1, -1), int(score.numel() * sparsity)).reshape(d_out, d_in)
    return lowest(score, int(d_in * sparsity) if per_row is None else per_row)


# Rows handled at once by lowest: bounds its temporaries (at most 12 bytes per score: a sort's
# values and int64 indices, or the int64 ranks of tied scores) to 0.75 MiB whatever the layer's
# size; rows are independent, so results are the same.
SORT_CHUNK = 1 << 16


def lowest(score: Tensor, k: int) -> Tensor:
    """Mask of the k lowest entries along the last dim (stable: ties go to lower indices)."""
    mask = torch.zeros_like(score, dtype=torch.bool)
    if k <= 0:
        return mask
    if k >= score.shape[-1]:
        return mask.fill_(True)
    flat, flat_mask = score.reshape(-1, score.shape[-1]), mask.reshape(-1, score.shape[-1])
    rows = max(1, SORT_CHUNK // score.shape[-1])
    for start in range(0, flat.shape[0], rows):
        flat_mask[start : start + rows] = _lowest_rows(flat[start : start + rows], k)
    return mask


def _lowest_rows(rows: Tensor, k: int) -> Tensor:
    """Per row, the first k entries of a stable ascending sort, found without sorting (a
    selection is ~3x faster: the sort was Wanda's largest cost after the forward passes): every
    entry below the row's k-th smallest value v, then the entries equal to v in index order until
    k are taken. Needs 0 < k < row length."""
    kth = torch.kthvalue(rows, k, dim=-1, keepdim=True).values
    if kth.isnan().any():  # NaN sorts last but equals nothing: let the sort itself decide
        return _lowest_sorted(rows, k)
    below, tie = rows < kth, rows == kth
    need = k - below.sum(dim=-1, keepdim=True)
    if not torch.equal(tie.sum(dim=-1, keepdim=True), need):  # more ties than places left:
        tie &= tie.cumsum(dim=-1) <= need  # the lower indices first, as the stable sort
    return below.logical_or_(tie)


def _lowest_sorted(rows: Tensor, k: int) -> Tensor:
    """The same mask by a stable sort: the definition, for rows whose k-th value is NaN."""
    idx = torch.sort(rows, dim=-1, stable=True).indices[:, :k]
    return torch.zeros_like(rows, dtype=torch.bool).scatter_(-1, idx, True)


def _safe_div(num: Tensor, den: Tensor) -> Tensor:
    """num / den, with 0 wherever den == 0 (the spec's convention for V_j)."""
    return torch.where(
        den == 0, torch.zeros_like(num), num / torch.where(den == 0, torch.ones_like(den), den)
    )
