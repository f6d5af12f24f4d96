"""Which calibration languages protect which others (the transfer map of notebook 08).

Many small calibration subsets are drawn from the corpus's languages, each pruned and evaluated
on every language. A language outside a subset is *unseen* by that calibration; its damage
there, minus its mean damage over all the subsets that leave it out, is its *residual*: negative
when this subset protects it better than a typical subset does. The heatmap averages residuals
per (calibration language, evaluated language); the scatter relates them to the evaluated
language's distance to the subset (``distances.to_subset``). Pure functions on tables: no model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from mwanda import data, udhr
from mwanda.data import DataError
from mwanda.study import distances


def draw_subsets(
    groups: Mapping[str, tuple[str, str]], count: int, size: int, seed: int = 0
) -> list[list[str]]:
    """``count`` subsets of ``size`` languages, stratified: ``groups`` maps each language to
    (family, script). Each subset is filled one language at a time with the least-used language
    (over the subsets so far) whose family and script the subset lacks, ties broken by a
    generator seeded with ``seed``; no subset repeats. Deterministic."""
    langs = sorted(groups)
    if not 1 <= size < len(langs):
        raise DataError(
            f"subset size {size} must be between 1 and {len(langs) - 1} (there are {len(langs)} languages)"
        )
    gen = torch.Generator().manual_seed(seed)
    used = dict.fromkeys(langs, 0)
    subsets: list[list[str]] = []
    tries = 0
    while len(subsets) < count:
        tries += 1
        if tries > 100 * count:
            raise DataError(f"cannot draw {count} distinct subsets of {size} from {len(langs)} languages")
        noise = dict(zip(langs, torch.rand(len(langs), generator=gen).tolist(), strict=True))
        subset: list[str] = []
        for _ in range(size):
            subset.append(_least_used(langs, subset, groups, used, noise))
        if sorted(subset) in [sorted(s) for s in subsets]:
            continue
        for c in subset:
            used[c] += 1
        subsets.append(subset)
    return subsets


def _least_used(langs, subset, groups, used, noise) -> str:
    """The next member: least used so far, then of a family and a script the subset lacks."""
    families = {groups[c][0] for c in subset}
    scripts = {groups[c][1] for c in subset}

    def key(lang: str) -> tuple:
        family, script = groups[lang]
        return (used[lang], family in families, script in scripts, noise[lang])

    return min((c for c in langs if c not in subset), key=key)


def residuals(runs: pd.DataFrame) -> pd.DataFrame:
    """Rows of the languages outside each run's subset, with ``residual``: its ``rel_increase``
    minus the mean over the runs (of the same ``method`` and ``sparsity``) that leave it out.

    ``runs``: one row per run and evaluated language with columns ``subset`` (comma-joined
    calibration languages), ``language``, ``method``, ``sparsity``, ``rel_increase``.
    """
    out = runs[[lang not in s.split(",") for lang, s in zip(runs["language"], runs["subset"], strict=True)]]
    base = out.groupby(["method", "sparsity", "language"])["rel_increase"].transform("mean")
    return out.assign(residual=out["rel_increase"] - base)


def transfer_map(res: pd.DataFrame) -> pd.DataFrame:
    """Mean residual per (calibration language, evaluated language): rows calibrate, columns are
    evaluated; NaN where no subset held the first without the second."""
    pairs = [
        {"calibration": c, "language": lang, "residual": r}
        for s, lang, r in zip(res["subset"], res["language"], res["residual"], strict=True)
        for c in s.split(",")
    ]
    return pd.DataFrame(pairs).pivot_table(index="calibration", columns="language", values="residual")


@dataclass(frozen=True, eq=False)
class Fit:
    """Least-squares line y = intercept + slope x; ``low``..``high``: the slope's 95% interval
    from a bootstrap over clusters (the subsets: rows of one subset are not independent), with
    the bootstrap lines kept for the band."""

    slope: float
    intercept: float
    low: float
    high: float
    r: float
    n: int
    clusters: int
    lines: np.ndarray  # [n_boot, 2]: intercept, slope of each bootstrap replicate

    def band(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """95% band of the fitted line at ``x`` (percentiles of the bootstrap lines)."""
        ys = self.lines[:, :1] + self.lines[:, 1:] * np.asarray(x, dtype=float)[None, :]
        return np.percentile(ys, 2.5, axis=0), np.percentile(ys, 97.5, axis=0)


def _ols(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    xm = x.mean()
    slope = float(((x - xm) * (y - y.mean())).sum() / ((x - xm) ** 2).sum())
    return float(y.mean() - slope * xm), slope


def fit_line(
    x: Sequence[float], y: Sequence[float], clusters: Sequence, n_boot: int = 2000, seed: int = 0
) -> Fit:
    """Ordinary least squares of ``y`` on ``x`` and Pearson's r; the slope's 95% interval from
    ``n_boot`` resamples of whole ``clusters`` (with replacement). Non-finite points are dropped."""
    xa, ya, ca = np.asarray(x, dtype=float), np.asarray(y, dtype=float), np.asarray(clusters)
    keep = np.isfinite(xa) & np.isfinite(ya)
    xa, ya, ca = xa[keep], ya[keep], ca[keep]
    names = np.unique(ca)
    if len(xa) < 3 or np.all(xa == xa[0]) or len(names) < 2:
        raise DataError("a line needs at least 3 points, two different x values and two clusters")
    intercept, slope = _ols(xa, ya)
    rng = np.random.default_rng(seed)
    members = [np.flatnonzero(ca == c) for c in names]
    lines = []
    for _ in range(n_boot):
        idx = np.concatenate([members[i] for i in rng.integers(0, len(names), len(names))])
        if np.all(xa[idx] == xa[idx][0]):
            continue  # a replicate without spread in x has no slope
        lines.append(_ols(xa[idx], ya[idx]))
    lines_arr = np.array(lines)
    low, high = np.percentile(lines_arr[:, 1], [2.5, 97.5])
    r = float(np.corrcoef(xa, ya)[0, 1])
    return Fit(slope, intercept, float(low), float(high), r, len(xa), len(names), lines_arr)


def corpus_distances(langs: Sequence[str]) -> dict[str, pd.DataFrame]:
    """Pairwise distances between corpus languages, by kind: URIEL genetic (a language URIEL
    knows no family for, an isolate, is at distance 1 from all) and syntactic cosines,
    great-circle distance in 1,000 km between their UDHR declarations' coordinates, and 1 where
    two languages are written in different scripts."""
    table = data.language_table()
    iso = {c: distances.iso639_3(table[c].udhr) for c in langs}
    decl = {row.embedded: row for row in udhr.udhr_table().values() if row.embedded in set(langs)}
    coords = {c: (decl[c].latitude, decl[c].longitude) for c in langs}
    return {
        "genetic": distances.language_distances(iso, "genetic", missing="nan").fillna(1.0),
        "syntactic": distances.language_distances(iso, "syntactic", missing="nan"),
        "geographic (1,000 km)": distances.great_circle_km(coords) / 1000,
        "no member shares its script": (~distances.same_script({c: table[c].script for c in langs})).astype(
            float
        ),
    }


def with_distances(res: pd.DataFrame, matrices: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """``res`` with one column per distance kind: each row's language to its subset's nearest member."""
    out = res.copy()
    for name, m in matrices.items():
        nearest = {s: distances.to_subset(m, s.split(","), "min") for s in out["subset"].unique()}
        out[name] = [float(nearest[s][lang]) for s, lang in zip(out["subset"], out["language"], strict=True)]
    return out


def unidentifiable(res: pd.DataFrame, kinds: Sequence[str]) -> list[str]:
    """The distance kinds that never vary within a language (per method and sparsity).

    A residual is centred per evaluated language (:func:`residuals`), so a regressor that is the
    same for every subset leaving a language out is orthogonal to it: its slope is 0 by
    construction, whatever the truth. On the embedded corpus "no member shares its script" is one:
    a language in a script of its own never shares it, and every Latin-script language always does.
    """
    keys = ["method", "sparsity", "language"]
    return [k for k in kinds if (res.groupby(keys)[k].nunique(dropna=True) <= 1).all()]


def fit_table(res: pd.DataFrame, kinds: Sequence[str]) -> pd.DataFrame:
    """One ``fit_line`` of the residual (in points) on each distance kind, per method and sparsity.

    A kind that never varies within a language (:func:`unidentifiable`) is refused: its slope
    would be 0 by construction, not a measurement."""
    fixed = unidentifiable(res, kinds)
    if fixed:
        raise DataError(
            f"{fixed} never vary within an evaluated language, so the per-language residual cannot "
            "depend on them (slope 0 by construction); leave them out (transfer.unidentifiable lists them)"
        )
    rows = []
    for (method, sparsity), g in res.groupby(["method", "sparsity"]):
        for kind in kinds:
            fit = fit_line(g[kind], g["residual"] * 100, g["subset"])
            rows.append(
                {"method": method, "sparsity": sparsity, "distance": kind, "slope_points": fit.slope}
                | {"low": fit.low, "high": fit.high, "r": fit.r, "n": fit.n, "subsets": fit.clusters}
            )
    columns = ["method", "sparsity", "distance", "slope_points", "low", "high", "r", "n", "subsets"]
    return pd.DataFrame(rows, columns=columns)
