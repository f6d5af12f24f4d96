"""SparseGPT: pure tensor functions (no model, no hooks, no I/O).

Frantar & Alistarh, *SparseGPT: Massive Language Models Can Be Accurately Pruned in One-Shot*,
ICML 2023 (arXiv:2301.00774). Written from the paper's equations; no code copied.

For one linear layer with weight W [d_out, d_in] and the Hessian of its layer-wise
reconstruction error H = 2/N sum_t x_t x_t^T [d_in, d_in]:

1. dead inputs (H_jj = 0) get W_:j = 0 and H_jj = 1, so H can be inverted;
2. dampening: H += lambda I with lambda = percdamp * mean_j H_jj (the paper's 1%);
3. U = the upper Cholesky factor of H^-1 (H^-1 = U^T U). Row j of U holds, up to the factor
   U_jj, row j of the inverse Hessian of the weights j, j+1, ... that are not yet processed
   (the paper's sequence of H_{F_j}^-1 at the cost of one factorisation), and
   U_jj^2 = [H_{F_j}^-1]_jj;
4. columns in blocks of ``blocksize``: at a block's start its mask is chosen from the OBS
   saliency w_ij^2 / U_jj^2 (Eq. 3 of OBS, times s_j^2 for the language-aware extension);
   then column by column, w_:j is replaced by its masked value q_:j and the error
   (w_:j - q_:j) / U_jj is spread over the block's remaining columns with row j of U (the OBS
   update delta = -(w_p / [H^-1]_pp) [H^-1]_p,:); the block's errors reach the later columns in
   one matrix product (the paper's lazy batch updates, Alg. 1).

Everything here runs in float64 (``prune_layer`` copies W to it; H arrives in float64,
accumulated so by ``stats.add_hessian``, and is overwritten: its diagonal by steps 1-2, and the
caller frees it once ``factor`` has returned U; one more d_in x d_in matrix lives beside H while U
is computed, in which L, H^-1 and U follow each other): the update chains
d_in dependent corrections through a Cholesky inverse whose error grows with H's condition
number, and float64 keeps that error far below any mask decision on every model size we run.

Mask semantics (the same per-row counts as the other methods, see ``scores.prune_mask``):

- ``PerRow(k)``: every row prunes exactly k weights. The reference selects per block over all
  rows, which cannot guarantee per-row counts; we select per block *per row*: block [c0, c1)
  prunes floor(k c1 / d_in) - floor(k c0 / d_in) weights of every row (its share, rounded
  cumulatively, so the shares of a row add up to exactly k), the lowest saliencies of that row
  in that block at the block's start, as the reference does per block.
- ``PerLayer(k)``: k weights of the whole layer (comparison='layer'): block [c0, c1) prunes its
  cumulative share of k over all rows, which is the reference's own rule.
- ``NM(n, m)``: the n lowest saliencies of every m consecutive inputs, chosen when the update
  reaches the group's first column (the reference's rule); m must divide ``blocksize``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mwanda.core.scores import all_finite, lowest

Tensor = torch.Tensor

# Cholesky attempts per layer, dampening 10x more each time (default: 0.01, 0.1, 1, 10).
MAX_DAMPING_TRIES = 4


@dataclass(frozen=True)
class PerRow:
    """Every row prunes exactly ``k`` weights."""

    k: int


@dataclass(frozen=True)
class PerLayer:
    """The layer prunes ``k`` weights in all, each block its share (the reference's rule)."""

    k: int


@dataclass(frozen=True)
class NM:
    """``n`` of every ``m`` consecutive inputs are pruned in every row."""

    n: int
    m: int


MaskRule = PerRow | PerLayer | NM


class NotPositiveDefinite(ValueError):
    """H + lambda I stayed not positive definite up to the last dampening tried."""

    def __init__(self, percdamp: float) -> None:
        super().__init__(f"not positive definite even with percdamp={percdamp:g}")
        self.percdamp = percdamp


@dataclass(frozen=True)
class Factor:
    """What a layer's pruning needs of its Hessian: U (upper Cholesky factor of the dampened
    H^-1), the dead inputs (H_jj = 0) and the dampening used. Linears that share an input share
    it: it depends on H alone."""

    U: Tensor
    dead: Tensor  # [d_in] bool
    percdamp: float


def factor(H: Tensor, percdamp: float, tries: int = MAX_DAMPING_TRIES) -> Factor:
    """Steps 1-3 for the Hessian ``H`` [d_in, d_in] (float64; its diagonal is overwritten: dead
    inputs get H_jj = 1, which keeps H invertible, and the dampening is added in place)."""
    dead = torch.diagonal(H) == 0
    torch.diagonal(H)[dead] = 1.0
    U, used = inverse_factor(H, percdamp, tries)
    return Factor(U, dead, used)


def inverse_factor(H: Tensor, percdamp: float, tries: int = MAX_DAMPING_TRIES) -> tuple[Tensor, float]:
    """(U, percdamp used): U is the upper Cholesky factor of (H + lambda I)^-1, lambda = percdamp *
    mean_j H_jj. When a Cholesky fails the dampening is raised 10x, ``tries`` times in all, then
    NotPositiveDefinite. ``H``'s diagonal is dampened in place (no second d_in x d_in copy)."""
    diag = torch.diagonal(H)
    undamped, mean_diag = diag.clone(), diag.mean()
    for t in range(tries):
        damp = percdamp * 10**t
        diag.copy_(undamped + damp * mean_diag)  # from the undamped diagonal: no drift across tries
        U = _try_inverse_factor(H)
        if U is not None:
            return U, damp
    raise NotPositiveDefinite(damp)


def _try_inverse_factor(H: Tensor) -> Tensor | None:
    """Upper Cholesky factor of H^-1 through H's own Cholesky factor, or None if either fails.

    One d_in x d_in matrix besides H: L, then H^-1 and then U overwrite it. LAPACK's potri and
    potrf work in place on a column-major matrix, which is how torch returns L, so ``out=L`` adds
    no copy; the results are bit-identical to the out-of-place calls (tested). H stays intact
    (but for its diagonal) until U exists, so a failed try can be retried with more dampening.
    """
    L, info = torch.linalg.cholesky_ex(H)
    # all_finite, not isfinite(L).all(): that builds |L| and a bool copy, a third matrix at the peak
    if info.item() != 0 or not all_finite(L):
        return None
    torch.cholesky_inverse(L, out=L)  # L now holds H^-1
    torch.linalg.cholesky_ex(L, upper=True, out=(L, info))  # and now U
    return L if info.item() == 0 and all_finite(L) else None


def prune_obs(W: Tensor, U: Tensor, rule: MaskRule, blocksize: int, scale: Tensor | None = None) -> Tensor:
    """Prune ``W`` [d_out, d_in] (float64, updated in place) with SparseGPT's blocked OBS updates.

    ``U``: upper Cholesky factor of the dampened H^-1 (``inverse_factor``). ``scale``: s_j [d_in]
    multiplying the saliency by s_j^2 (mask selection only; None: plain SparseGPT). Returns the
    boolean mask, True = pruned; pruned weights are exactly 0 afterwards.
    """
    if isinstance(rule, NM) and blocksize % rule.m:
        raise ValueError(
            f"blocksize {blocksize} is not a multiple of m={rule.m}: N:M groups would straddle blocks."
        )
    d_out, d_in = W.shape
    mask = torch.zeros_like(W, dtype=torch.bool)
    for c0 in range(0, d_in, blocksize):
        c1 = min(c0 + blocksize, d_in)
        s2 = None if scale is None else scale[c0:c1].square()
        err = _prune_block(W[:, c0:c1], U[c0:c1, c0:c1], mask[:, c0:c1], rule, (c0, c1, d_in), s2)
        W[:, c1:] -= err @ U[c0:c1, c1:]  # the block's errors reach every later column at once
    return mask


def _prune_block(W1: Tensor, U1: Tensor, M1: Tensor, rule: MaskRule, span, s2) -> Tensor:
    """One block of columns (views into W and the mask): mask, then OBS column by column.
    Returns the block's scaled errors [d_out, B] for the lazy update of the later columns."""
    d = torch.diagonal(U1)
    if not isinstance(rule, NM):
        M1[:] = _block_mask(saliency(W1, d, s2), rule, span)
    err = torch.empty_like(W1)
    for j in range(W1.shape[1]):
        if isinstance(rule, NM) and j % rule.m == 0:
            group = slice(j, j + rule.m)
            sal = saliency(W1[:, group], d[group], None if s2 is None else s2[group])
            M1[:, group] = lowest(sal, rule.n)
        q = W1[:, j].masked_fill(M1[:, j], 0.0)
        err[:, j] = (W1[:, j] - q) / d[j]
        W1[:, j + 1 :] -= err[:, j : j + 1] * U1[j : j + 1, j + 1 :]  # OBS update of the block's rest
        W1[:, j] = q  # exactly q: pruned weights are exact zeros, not rounding residue
    return err


def saliency(W: Tensor, d: Tensor, s2: Tensor | None = None) -> Tensor:
    """OBS saliency w_ij^2 / U_jj^2 (= w^2 / [H_F^-1]_jj, the error of removing w_ij alone), times
    s_j^2 when given (language-aware: scaling saliency by s^2 is scaling w by s)."""
    sal = W.square() / d.square().reshape(1, -1)
    return sal if s2 is None else sal * s2.reshape(1, -1)


def _block_mask(sal: Tensor, rule: PerRow | PerLayer, span: tuple[int, int, int]) -> Tensor:
    """The block's mask: its cumulative share of the row's (or layer's) count, lowest first."""
    c0, c1, d_in = span
    share = rule.k * c1 // d_in - rule.k * c0 // d_in
    if isinstance(rule, PerRow):
        return lowest(sal, share)
    return lowest(sal.reshape(1, -1), share).reshape(sal.shape)


def prune_layer(
    W: Tensor, f: Factor, rule: MaskRule, blocksize: int = 128, scale: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Step 4 on one layer: (pruned and updated W in float64, mask). ``W`` [d_out, d_in] is copied
    and never modified; the weights of dead inputs multiply zeros, so they are removed first, free."""
    W = W.to(torch.float64, copy=True)
    W[:, f.dead] = 0.0
    return W, prune_obs(W, f.U, rule, blocksize, scale)


def sparsegpt(
    W: Tensor,
    H: Tensor,
    rule: MaskRule,
    blocksize: int = 128,
    percdamp: float = 0.01,
    scale: Tensor | None = None,
) -> tuple[Tensor, Tensor, float]:
    """SparseGPT on one layer: (pruned and updated W, mask, percdamp used), W float64.

    ``W`` [d_out, d_in] is copied to float64 and never modified. ``H`` [d_in, d_in] (float64, the
    caller's own copy: dead inputs and dampening are written into it) is the layer's Hessian.
    """
    f = factor(H, percdamp)
    W, mask = prune_layer(W, f, rule, blocksize, scale)
    return W, mask, f.percdamp
