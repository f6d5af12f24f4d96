"""How sure a comparison is: a paired bootstrap over evaluation paragraphs and calibration seeds.

The statistic is the one every notebook prints: a method's mean over languages (and seeds) of
its relative increase in bits per byte over the dense model,

    inc_X = mean_l mean_s ( sum_p nll_X[s, l, p] / sum_p nll_dense[l, p] ) - 1,

where p runs over the evaluation paragraphs (the bytes cancel: both measure the same text), and
a comparison's effect is inc_other - inc_base (negative: ``other`` degrades less).

Two things could have come out otherwise: the text it was measured on and the calibration
sample. A bootstrap replicate redraws both with replacement (Efron & Tibshirani 1993, ch. 6):
P paragraphs out of P, one draw for every language, method and seed, because the paragraphs are
parallel (paragraph p is the same content in every language, ``data.parallel_text``), and S
seeds out of S, one draw for both methods, because seed s calibrates both on the same text. The
95% interval is the 2.5th and 97.5th percentiles of the replicates' effects. With one seed the
interval covers the text only; ``seeds`` says how many there were.

Verdict of a claim "other degrades less than base": **holds** if the whole interval is below 0,
**reversed** if it is above 0, **within noise** if it contains 0. The hierarchical bootstrap
(below) also resamples the languages and the help pages; its two-sided bootstrap p-value,
2 min(P*(effect <= 0), P*(effect >= 0)), is what a multiple-comparison correction adjusts
(``holm``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LEVEL = 0.95  # two-sided interval
N_BOOT = 4000  # replicates: the percentiles move by < 0.01 points of increase between reruns at this size
SEED = 0  # the bootstrap's own generator: the same data give the same interval


@dataclass(frozen=True)
class Interval:
    """An effect, its bootstrap interval and what it was resampled over."""

    effect: float
    low: float
    high: float
    paragraphs: int
    seeds: int

    @property
    def verdict(self) -> str:
        """'holds' (below 0), 'reversed' (above 0) or 'within noise'."""
        return "holds" if self.high < 0 else "reversed" if self.low > 0 else "within noise"


def increase(nll: np.ndarray, dense: np.ndarray) -> float:
    """inc_X of paragraph NLLs ``nll`` [S, L, P] against the dense model's ``dense`` [L, P]."""
    return float((nll.sum(axis=2) / dense.sum(axis=1)).mean() - 1)


def paired_bootstrap(
    base: np.ndarray,
    other: np.ndarray,
    dense: np.ndarray,
    n_boot: int = N_BOOT,
    seed: int = SEED,
    level: float = LEVEL,
) -> Interval:
    """The interval of inc_other - inc_base (module doc). ``base`` and ``other``: paragraph NLLs
    [S, L, P], seed s of one paired with seed s of the other; one of them may have a single seed
    (a method that reads no calibration data: magnitude), which then pairs with every seed.
    ``dense``: [L, P]."""
    n_par = np.shape(dense)[1]
    effect, low, high, n_seeds, _ = _resample(
        base, other, dense, np.arange(n_par), False, n_boot, seed, level
    )
    return Interval(effect, low, high, n_par, n_seeds)


@dataclass(frozen=True)
class HierarchicalInterval(Interval):
    """An interval that also resampled the languages and the pages the paragraphs come from."""

    languages: int = 0
    pages: int = 0
    p_value: float = float("nan")


def hierarchical_bootstrap(
    base: np.ndarray,
    other: np.ndarray,
    dense: np.ndarray,
    pages: np.ndarray,
    n_boot: int = N_BOOT,
    seed: int = SEED,
    level: float = LEVEL,
) -> HierarchicalInterval:
    """The interval of inc_other - inc_base when the languages, the help pages and the seeds are
    all samples of larger populations. Each replicate draws, with replacement and independently,
    L languages out of L, G pages out of G (a page brings all its paragraphs: they are not
    independent of each other) and S seeds out of S, and weighs every (seed, language, paragraph)
    cell by the product of the three draws: the pigeonhole bootstrap for crossed random factors
    (Owen 2007, Ann. Appl. Stat. 1(2)), here with three factors. ``pages`` [P]: the page of each
    paragraph (any integer or string labels); the arrays as in ``paired_bootstrap``."""
    _, page_idx = np.unique(np.asarray(pages), return_inverse=True)
    if page_idx.shape != (np.shape(dense)[1],):
        raise ValueError(f"pages gives {page_idx.size} labels for {np.shape(dense)[1]} paragraphs.")
    effect, low, high, n_seeds, p = _resample(base, other, dense, page_idx, True, n_boot, seed, level)
    n_lang, n_par = np.shape(dense)
    return HierarchicalInterval(effect, low, high, n_par, n_seeds, n_lang, int(page_idx.max()) + 1, p)


def gap_bootstrap(
    nll: np.ndarray,
    dense: np.ndarray,
    first: np.ndarray,
    pages: np.ndarray,
    languages: bool = True,
    n_boot: int = N_BOOT,
    seed: int = SEED,
    level: float = LEVEL,
) -> HierarchicalInterval:
    """The interval of inc_A - inc_B for two groups of languages under one method (``nll`` [S, L,
    P], ``dense`` [L, P]): A the languages ``first`` marks (a boolean mask over L), B the rest,
    inc_G the mean over G's languages and the seeds of the relative increase. Each replicate draws
    the pages and the seeds and, if ``languages``, the languages within each group (each keeps its
    size), as ``hierarchical_bootstrap`` does for two methods."""
    nll, dense = np.asarray(nll, dtype=np.float64), np.asarray(dense, dtype=np.float64)
    first = np.asarray(first, dtype=bool)
    if nll.ndim != 3 or nll.shape[1:] != dense.shape or first.shape != (dense.shape[0],):
        raise ValueError(f"shapes do not pair: nll {nll.shape}, dense {dense.shape}, first {first.shape}.")
    if first.all() or not first.any():
        raise ValueError("both groups need at least one language.")
    _, page_idx = np.unique(np.asarray(pages), return_inverse=True)
    n_seeds, n_lang, n_par = nll.shape
    rng = np.random.default_rng(seed)
    par_w = np.ascontiguousarray(_draws(rng, int(page_idx.max()) + 1, n_boot)[:, page_idx])  # [B, P]
    seed_w = _draws(rng, n_seeds, n_boot)  # [B, S]
    signed = np.where(first, 1.0 / first.sum(), -1.0 / (~first).sum())  # mean of A minus mean of B
    lang_w = np.broadcast_to(signed, (n_boot, n_lang)).copy()
    if languages:
        for group in (first, ~first):
            idx = np.flatnonzero(group)
            lang_w[:, idx] = signed[idx] * _draws(rng, len(idx), n_boot)
    ratio = np.einsum("bp,slp->bsl", par_w, nll) / (par_w @ dense.T)[:, None, :]  # [B, S, L]
    effects = np.einsum("bs,bl,bsl->b", seed_w, lang_w, ratio) / n_seeds
    low, high, p = _percentiles(effects, level)
    effect = float(signed @ (nll.sum(axis=2) / dense.sum(axis=1)).mean(axis=0))
    pages_n = int(page_idx.max()) + 1
    return HierarchicalInterval(effect, low, high, n_par, n_seeds, n_lang, pages_n, p)


def _resample(
    base, other, dense, page_idx: np.ndarray, languages: bool, n_boot: int, seed: int, level: float
) -> tuple[float, float, float, int, float]:
    """(effect, low, high, seeds, p-value): each replicate draws the pages (``page_idx`` [P]: a
    paragraph counts as often as its page is drawn), the seeds and, if ``languages``, the languages."""
    base, other, dense = (np.asarray(a, dtype=np.float64) for a in (base, other, dense))
    n_seeds = max(base.shape[0], other.shape[0])
    _check_shapes(base, other, dense, n_seeds)
    base, other = (np.broadcast_to(a, (n_seeds, *dense.shape)) for a in (base, other))
    n_lang = dense.shape[0]
    rng = np.random.default_rng(seed)
    par_w = np.ascontiguousarray(_draws(rng, int(page_idx.max()) + 1, n_boot)[:, page_idx])  # [B, P]
    seed_w = _draws(rng, n_seeds, n_boot)  # [B, S]
    lang_w = _draws(rng, n_lang, n_boot) if languages else None  # [B, L]
    dense_sum = par_w @ dense.T  # [B, L]

    def replicate_increase(nll: np.ndarray) -> np.ndarray:
        ratio = np.einsum("bp,slp->bsl", par_w, nll) / dense_sum[:, None, :]  # [B, S, L]
        if lang_w is None:  # every language once
            return np.einsum("bs,bsl->b", seed_w, ratio) / (n_seeds * n_lang) - 1
        return np.einsum("bs,bl,bsl->b", seed_w, lang_w, ratio) / (n_seeds * n_lang) - 1

    effects = replicate_increase(other) - replicate_increase(base)
    low, high, p = _percentiles(effects, level)
    return increase(other, dense) - increase(base, dense), low, high, n_seeds, p


def _percentiles(effects: np.ndarray, level: float) -> tuple[float, float, float]:
    """The replicates' central ``level`` interval and two-sided p-value, 2 min(P*(<= 0), P*(>= 0))."""
    low, high = np.quantile(effects, [(1 - level) / 2, (1 + level) / 2])
    p = min(1.0, 2 * min(float((effects <= 0).mean()), float((effects >= 0).mean())))
    return float(low), float(high), p


def _draws(rng: np.random.Generator, n: int, n_boot: int) -> np.ndarray:
    """How often each of n units is drawn in each of n_boot resamples of size n: [n_boot, n]."""
    return rng.multinomial(n, np.full(n, 1 / n), size=n_boot).astype(np.float64)


def _check_shapes(base: np.ndarray, other: np.ndarray, dense: np.ndarray, n_seeds: int) -> None:
    if (
        base.ndim != 3
        or base.shape[1:] != other.shape[1:]
        or base.shape[1:] != dense.shape
        or {base.shape[0], other.shape[0]} - {1, n_seeds}
    ):
        raise ValueError(
            f"paragraph NLLs do not pair: base {base.shape}, other {other.shape}, dense {dense.shape} "
            "(seeds x languages x paragraphs, the same seeds or one; dense: languages x paragraphs)."
        )


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm's step-down adjustment (Holm 1979, Scand. J. Statist. 6(2)): the i-th smallest of m
    p-values is multiplied by m - i + 1, kept monotone, capped at 1; a family's claims then hold
    together at the level a single one would. NaN (no p-value) stays NaN and is not counted."""
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    have = np.flatnonzero(~np.isnan(p))
    order = have[np.argsort(p[have], kind="stable")]
    m = len(order)
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out[order] = adjusted
    return out
