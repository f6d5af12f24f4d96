"""Issue 12's transfer map: stratified subsets, residuals, the map and the line fit."""

import numpy as np
import pandas as pd
import pytest

from mwanda import data
from mwanda.data import DataError
from mwanda.study import transfer

GROUPS = {c: (r.family.split("/")[0], r.script) for c, r in data.language_table().items()}


def test_subsets_are_distinct_balanced_stratified_and_seeded():
    subsets = transfer.draw_subsets(GROUPS, 20, 4, seed=0)
    assert len({tuple(sorted(s)) for s in subsets}) == 20 and all(len(set(s)) == 4 for s in subsets)
    uses = pd.Series([c for s in subsets for c in s]).value_counts()
    assert len(uses) == 30 and uses.max() - uses.min() <= 1  # 80 slots over 30 languages: 2 or 3 each
    mixed = [len({GROUPS[c][0] for c in s}) for s in subsets]
    assert np.mean(mixed) >= 2.5  # families mixed within a subset
    assert subsets == transfer.draw_subsets(GROUPS, 20, 4, seed=0)
    assert subsets != transfer.draw_subsets(GROUPS, 20, 4, seed=1)
    with pytest.raises(DataError, match="between 1 and 29"):
        transfer.draw_subsets(GROUPS, 2, 30)
    with pytest.raises(DataError, match="cannot draw 5 distinct"):
        transfer.draw_subsets({"a": ("x", "L"), "b": ("y", "L"), "c": ("z", "L")}, 5, 2)


def _runs():
    rows = []
    for subset, lang, rel in [
        ("a,b", "c", 0.10),
        ("a,b", "a", 0.01),  # in its subset: dropped
        ("b,d", "c", 0.20),
        ("a,d", "c", 0.15),
        ("a,d", "b", 0.40),
        ("b,d", "a", 0.30),
    ]:
        rows.append(
            {"subset": subset, "language": lang, "method": "wanda", "sparsity": 0.5, "rel_increase": rel}
        )
    return pd.DataFrame(rows)


def test_residuals_and_map():
    res = transfer.residuals(_runs())
    assert len(res) == 5
    c = res[res["language"] == "c"].set_index("subset")["residual"]
    assert c.to_dict() == pytest.approx({"a,b": -0.05, "b,d": 0.05, "a,d": 0.0})
    m = transfer.transfer_map(res)
    assert m.loc["a", "c"] == pytest.approx(-0.025)  # subsets a,b and a,d
    assert m.loc["d", "c"] == pytest.approx(0.025)
    assert np.isnan(m.loc["b", "b"])  # a language never calibrates its own evaluation


def test_fit_line_recovers_a_slope_with_a_cluster_bootstrap_interval():
    x = np.tile(np.arange(10.0), 6)
    clusters = np.repeat(np.arange(6), 10)
    offsets = np.array([0.3, -0.2, 0.1, -0.4, 0.2, 0.0])[clusters]  # shared within a cluster
    y = 2.0 * x + 1 + offsets + np.resize([0.05, -0.05], 60)
    fit = transfer.fit_line(x, y, clusters, n_boot=500)
    assert fit.slope == pytest.approx(2.0, abs=0.01) and fit.low < fit.slope < fit.high
    assert (fit.n, fit.clusters) == (60, 6) and fit.r > 0.99
    low, high = fit.band(np.array([0.0, 9.0]))
    assert (low < high).all()
    again = transfer.fit_line(x, y, clusters, n_boot=500)
    assert (again.low, again.high) == (fit.low, fit.high)  # seeded
    with pytest.raises(DataError, match="at least 3 points"):
        transfer.fit_line([1, 1, 1], [1, 2, 3], [0, 1, 2])
    with pytest.raises(DataError, match="two clusters"):
        transfer.fit_line([1, 2, 3], [1, 2, 3], [0, 0, 0])


def test_corpus_distances_and_the_distance_of_each_residual_to_its_subset():
    m = transfer.corpus_distances(["en", "de", "ja", "eu"])
    assert set(m) == {"genetic", "syntactic", "geographic (1,000 km)", "no member shares its script"}
    assert m["genetic"].loc["eu", "en"] == 1.0  # an isolate shares no family
    assert m["genetic"].loc["de", "en"] < m["genetic"].loc["ja", "en"] <= 1.0
    assert (
        m["no member shares its script"].loc["de", "en"] == 0.0
        and m["no member shares its script"].loc["ja", "en"] == 1.0
    )
    assert 0.3 < m["geographic (1,000 km)"].loc["de", "en"] < 1.5  # Berlin-ish to London-ish
    res = pd.DataFrame({"subset": ["en,ja", "en,ja"], "language": ["de", "eu"], "residual": [0.01, -0.02]})
    out = transfer.with_distances(res, m)
    assert out.loc[0, "genetic"] == m["genetic"].loc["de", "en"]  # nearest member: English, not Japanese
    assert out.loc[0, "no member shares its script"] == 0.0 and out.loc[1, "genetic"] == 1.0
    assert list(res.columns) == ["subset", "language", "residual"]  # the input is left alone


def test_fit_table_has_one_line_per_method_sparsity_and_kind():
    rng = np.random.default_rng(0)
    res = pd.DataFrame(
        {
            "method": np.repeat(["wanda", "mwanda"], 30),
            "sparsity": 0.5,
            "subset": np.tile(np.repeat(["a,b", "c,d", "e,f"], 10), 2),
            "language": np.tile(list("ghijk"), 12),
            "kind": rng.random(60),
        }
    )
    res["residual"] = 0.01 * res["kind"] + 0.001 * rng.standard_normal(60)
    table = transfer.fit_table(res, ["kind"])
    assert list(table["method"]) == ["mwanda", "wanda"] and (table["subsets"] == 3).all()
    assert (table["slope_points"] - 1.0).abs().max() < 0.2 and (table["low"] < table["high"]).all()


def test_a_distance_fixed_within_every_language_is_refused_not_fitted_as_zero():
    # "shares a script" on the embedded corpus: fixed per language, so the centred residual is
    # orthogonal to it and OLS would report a slope of exactly 0
    res = transfer.residuals(_runs())
    res["script"] = (res["language"] == "c").astype(float)
    res["varies"] = np.arange(len(res), dtype=float)
    assert transfer.unidentifiable(res, ["script", "varies"]) == ["script"]
    with pytest.raises(DataError, match=r"\['script'\] never vary within an evaluated language"):
        transfer.fit_table(res, ["varies", "script"])
