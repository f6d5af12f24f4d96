"""Language distances for the transfer map (mwanda.study.distances): URIEL cosines, scripts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mwanda.data import DataError
from mwanda.study import distances

# --------------------------------------------------------------------------
# Pure functions (no package data)
# --------------------------------------------------------------------------


def test_cosine_distances_identity_symmetry_and_missing() -> None:
    vectors = {
        "a": np.array([1.0, 0.0, 1.0]),
        "b": np.array([0.0, 1.0, 0.0]),
        "c": np.array([2.0, 0.0, 2.0]),
        "d": np.array([1.0, 1.0, 0.0]),
        "gone": None,
        "zero": np.zeros(3),
    }
    dist = distances.cosine_distances(vectors)
    known = ["a", "b", "c", "d"]
    block = dist.loc[known, known].to_numpy()
    assert np.array_equal(np.diag(block), np.zeros(4))  # exactly zero
    assert np.array_equal(block, block.T)
    assert dist.loc["a", "b"] == pytest.approx(1.0)  # orthogonal
    assert dist.loc["a", "c"] == pytest.approx(0.0, abs=1e-12)  # same direction
    assert dist.loc["a", "d"] == pytest.approx(0.5)
    assert dist.loc["gone"].isna().all() and dist["zero"].isna().all()


def test_great_circle_km() -> None:
    dist = distances.great_circle_km({"north": (90.0, 0.0), "south": (-90.0, 10.0), "paris": (48.86, 2.35)})
    assert dist.loc["north", "south"] == pytest.approx(np.pi * distances.EARTH_RADIUS_KM)
    assert dist.loc["paris", "paris"] == 0.0 and np.array_equal(dist.to_numpy(), dist.to_numpy().T)


def test_same_script_accepts_codes_and_names() -> None:
    same = distances.same_script({"en": "Latin", "de": "Latn", "ru": "Cyrillic", "ja": "Jpan", "zh": "Han"})
    assert same.loc["en", "de"] and not same.loc["en", "ru"] and not same.loc["ja", "zh"]
    assert same.to_numpy().diagonal().all()
    with pytest.raises(DataError, match="unknown script 'Klingon'"):
        distances.same_script({"tlh": "Klingon"})


def test_to_subset_reduces_and_refuses_unknown_members() -> None:
    matrix = pd.DataFrame(
        [[0.0, 0.2, 0.9], [0.2, 0.0, 0.5], [0.9, 0.5, 0.0]], index=list("xyz"), columns=list("xyz")
    )
    assert distances.to_subset(matrix, ["x"]).to_dict() == {"y": 0.2, "z": 0.9}
    assert distances.to_subset(matrix, ["x", "y"], "mean").to_dict() == {"z": pytest.approx(0.7)}
    with pytest.raises(DataError, match=r"\['nope'\]"):
        distances.to_subset(matrix, ["x", "nope"])
    with pytest.raises(DataError, match="none given"):
        distances.to_subset(matrix, [])


def test_iso639_3() -> None:
    assert [distances.iso639_3(c) for c in ("de", "deu", "deu_Latn", "pt-BR", "ZH")] == [
        "deu",
        "deu",
        "deu",
        "por",
        "zho",
    ]
    with pytest.raises(DataError, match="not ISO 639"):
        distances.iso639_3("q")


# --------------------------------------------------------------------------
# URIEL through lang2vec's data files (the study extra)
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def uriel() -> None:
    pytest.importorskip("lang2vec", reason="lang2vec (the study extra) is not installed")


@pytest.mark.parametrize("kind", sorted(distances.URIEL_KINDS))
def test_uriel_distances_are_metric_like(uriel, kind: str) -> None:
    codes = ["en", "de", "nl", "fr", "ru", "hi", "ja"]
    dist = distances.language_distances(codes, kind)
    values = dist.to_numpy()
    assert not np.isnan(values).any()
    assert np.array_equal(np.diag(values), np.zeros(len(codes))) and np.array_equal(values, values.T)
    assert ((values >= 0) & (values <= 1)).all()
    assert dist.loc["de", "nl"] < dist.loc["de", "ja"]  # neighbours and relatives before Japanese


def test_genetic_distance_follows_families(uriel) -> None:
    dist = distances.language_distances(
        {"de": "deu", "nl": "nld", "ru": "rus", "hi": "hin", "fi": "fin"}, "genetic"
    )
    assert dist.loc["de", "nl"] < dist.loc["de", "ru"] < dist.loc["de", "fi"] == pytest.approx(1.0)
    assert dist.loc["ru", "hi"] < 1.0  # both Indo-European


def test_languages_missing_from_uriel_are_named(uriel) -> None:
    # 'cnr' (Montenegrin) is not in URIEL; 'eus' (Basque, an isolate) has no family to compare.
    with pytest.raises(DataError, match=r"genetic vector for me \(cnr\), eu \(eus\).*missing='nan'"):
        distances.language_distances({"en": "eng", "me": "cnr", "eu": "eus"}, "genetic")
    dist = distances.language_distances({"en": "eng", "me": "cnr", "eu": "eus"}, "genetic", missing="nan")
    assert dist.loc["en", "en"] == 0.0 and dist.loc["me"].isna().all() and dist["eu"].isna().all()
    assert not distances.language_distances(["eng", "eus"], "syntactic").isna().any().any()
    with pytest.raises(DataError, match="unknown distance kind 'phonetic'"):
        distances.language_distances(["eng"], "phonetic")
