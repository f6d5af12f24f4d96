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
**reversed** if it is above 0, **within noise** if it contains 0.
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
    base, other, dense = (np.asarray(a, dtype=np.float64) for a in (base, other, dense))
    n_seeds = max(base.shape[0], other.shape[0])
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
    base, other = (np.broadcast_to(a, (n_seeds, *dense.shape)) for a in (base, other))
    n_par = dense.shape[1]
    rng = np.random.default_rng(seed)
    par_w = rng.multinomial(n_par, np.full(n_par, 1 / n_par), size=n_boot).astype(np.float64)  # [B, P]
    seed_w = rng.multinomial(n_seeds, np.full(n_seeds, 1 / n_seeds), size=n_boot).astype(np.float64)
    dense_sum = par_w @ dense.T  # [B, L]

    def replicate_increase(nll: np.ndarray) -> np.ndarray:
        ratio = np.einsum("bp,slp->bsl", par_w, nll) / dense_sum[:, None, :]  # [B, S, L]
        return np.einsum("bs,bsl->b", seed_w, ratio) / (n_seeds * nll.shape[1]) - 1

    effects = replicate_increase(other) - replicate_increase(base)
    low, high = np.quantile(effects, [(1 - level) / 2, (1 + level) / 2])
    effect = increase(other, dense) - increase(base, dense)
    return Interval(effect, float(low), float(high), n_par, n_seeds)
