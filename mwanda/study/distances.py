"""Distances between languages, for the transfer map of the many-language study (notebook 08).

URIEL (Littell, Mortensen, Lin, Kairis, Turner, Levin: *URIEL and lang2vec: Representing
languages as typological, geographical, and phylogenetic vectors*, EACL 2017) describes each
language, by ISO 639-3 code, with vectors; as that paper does for its typological distances,
a distance here is the cosine distance 1 - cos(u, v) between two languages' vectors:

* ``genetic``: ``fam``, membership in each Glottolog family and subfamily (1/0);
* ``syntactic``: ``syntax_knn``, the WALS/SSWL/Ethnologue syntax features with gaps filled by
  k-nearest-neighbour predictions;
* ``geographic``: ``geo``, the language's location encoded as its distance to each of 299 fixed
  points on the Earth's surface.

URIEL's precomputed genetic and geographic distances are a tree distance and an orthodromic
one, not these cosines; ``great_circle_km`` gives the orthodromic kind from coordinates (the
cosine over ``geo`` vectors is compressed near 0: 0.002 for German-English, 0.14 for
German-Japanese).

The vectors are the files that the ``lang2vec`` package (1.1.2, the ``study`` extra) ships; its
own module imports ``pkg_resources``, which recent setuptools (84 here) no longer ships, so the
files are read here with NumPy, offline. A language URIEL lacks, or knows nothing about for the
kind asked (no vector, or for ``genetic`` no family at all: isolates such as Basque and codes
URIEL left unclassified such as ``ekk``, Standard Estonian, alike) is *missing*: an error naming
it, or NaN rows with ``missing="nan"``. ``great_circle_km``, ``same_script`` and ``to_subset``
need no package. No function here runs a model or reads anything but the package's data.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import pandas as pd

from mwanda.data import DataError
from mwanda.udhr import SCRIPT_NAMES

# kind -> (lang2vec data file, its source, feature-name prefix): lang2vec's "fam", "syntax_knn", "geo".
URIEL_KINDS = {
    "genetic": ("family_features.npz", "FAM", "F_"),
    "syntactic": ("feature_predictions.npz", "predicted", "S_"),
    "geographic": ("geocoord_features.npz", "GEOCOORDS", "GC_"),
}
LANG2VEC_HINT = "pip install lang2vec==1.1.2 (part of `pip install -e .[study]`)"


def iso639_3(code: str) -> str:
    """The ISO 639-3 code URIEL uses for ``code``: 'de' -> 'deu'; 'deu', 'deu_Latn', 'de-AT' -> 'deu'.

    Give ISO 639-3 codes where a two-letter code names a macrolanguage you do not mean
    ('zh' -> 'zho'; 'cmn' is Mandarin), and use a UDHR declaration's ``iso6393``, not its tag.
    """
    import pycountry  # local: only needed for two-letter codes

    primary = code.replace("-", "_").split("_")[0].lower()
    if len(primary) == 3 and primary.isalpha():
        return primary
    found = pycountry.languages.get(alpha_2=primary) if len(primary) == 2 else None
    if found is None:
        raise DataError(f"language code {code!r} is not ISO 639-1 or 639-3; use e.g. 'de' or 'deu'")
    return found.alpha_3


def uriel_rows(kind: str, iso_codes: Sequence[str]) -> dict[str, np.ndarray | None]:
    """ISO 639-3 code -> its URIEL vector for ``kind`` (float64; -1 = unknown), None if URIEL lacks it.

    Read from lang2vec's file on every call (the family table unpacks to 118 MB; kept only while
    the rows are taken).
    """
    if kind not in URIEL_KINDS:
        raise DataError(f"unknown distance kind {kind!r}; use one of {sorted(URIEL_KINDS)}")
    filename, source, prefix = URIEL_KINDS[kind]
    try:
        path = importlib.resources.files("lang2vec") / "data" / filename
        with path.open("rb") as fh, np.load(fh) as npz:
            feats = [i for i, name in enumerate(npz["feats"]) if str(name).startswith(prefix)]
            src = list(npz["sources"]).index(source)
            langs = {str(code): i for i, code in enumerate(npz["langs"])}
            rows = [langs[c] for c in iso_codes if c in langs]
            matrix = npz["data"][rows][:, feats, src].astype(np.float64)
    except (ModuleNotFoundError, FileNotFoundError) as err:
        raise DataError(f"URIEL distances need the lang2vec package's data: {LANG2VEC_HINT}") from err
    found = dict(zip([c for c in iso_codes if c in langs], matrix, strict=True))
    return {c: found.get(c) for c in iso_codes}


def uriel_vectors(codes: Mapping[str, str], kind: str) -> dict[str, np.ndarray | None]:
    """label -> URIEL vector of the ISO 639-3 code ``codes[label]``, or None where it is missing."""
    iso = {label: iso639_3(code) for label, code in codes.items()}
    vectors = uriel_rows(kind, sorted(set(iso.values())))
    out: dict[str, np.ndarray | None] = {}
    for label, code in iso.items():
        vec = vectors[code]
        known = vec is not None and not np.any(vec == -1) and (kind != "genetic" or vec.any())
        out[label] = vec if known else None
    return out


def cosine_distances(vectors: Mapping[str, np.ndarray | None]) -> pd.DataFrame:
    """Pairwise 1 - cos(u, v), labelled by the keys; NaN wherever a vector is None or all zero.

    Exactly 0 on the diagonal of every known language, and symmetric.
    """
    labels = list(vectors)
    known = [k for k in labels if vectors[k] is not None and np.linalg.norm(vectors[k]) > 0]
    out = pd.DataFrame(np.nan, index=labels, columns=labels, dtype=float)
    if known:
        unit = np.stack([vectors[k] / np.linalg.norm(vectors[k]) for k in known])
        dist = np.clip(1.0 - unit @ unit.T, 0.0, 2.0)
        dist = (dist + dist.T) / 2  # exact symmetry despite rounding
        np.fill_diagonal(dist, 0.0)
        out.loc[known, known] = dist
    return out


def language_distances(
    codes: Sequence[str] | Mapping[str, str], kind: str, missing: Literal["raise", "nan"] = "raise"
) -> pd.DataFrame:
    """Pairwise URIEL cosine distances (``kind``: genetic, syntactic, geographic).

    ``codes`` are ISO codes (labels and codes alike), or a mapping label -> ISO code (e.g. UDHR
    tag -> its ``iso6393``). Missing languages raise a DataError naming them, or with
    ``missing="nan"`` get NaN rows and columns (fill isolates' genetic distances with 1.0 if
    that is what you mean).
    """
    if missing not in ("raise", "nan"):
        raise DataError(f"missing must be 'raise' or 'nan', not {missing!r}")
    mapping = dict(codes) if isinstance(codes, Mapping) else {c: c for c in codes}
    vectors = uriel_vectors(mapping, kind)
    absent = [f"{label} ({mapping[label]})" for label, vec in vectors.items() if vec is None]
    if absent and missing == "raise":
        raise DataError(
            f"URIEL has no {kind} vector for {', '.join(absent)}; pass another ISO 639-3 code for "
            "them (e.g. the macrolanguage: 'est' for 'ekk'), or missing='nan' to keep NaN rows"
        )
    return cosine_distances(vectors)


EARTH_RADIUS_KM = 6371.0  # mean radius


def great_circle_km(coords: Mapping[str, tuple[float, float]]) -> pd.DataFrame:
    """Pairwise great-circle (haversine) distances in km between (latitude, longitude) points,
    e.g. the UDHR table's coordinates: defined for every declaration, where URIEL misses some,
    and on a linear scale, where the cosine over ``geo`` vectors is compressed near 0."""
    labels = list(coords)
    lat, lon = (np.radians(np.array([coords[k][i] for k in labels], dtype=float)) for i in (0, 1))
    dlat = lat[:, None] - lat[None, :]
    dlon = lon[:, None] - lon[None, :]
    h = np.sin(dlat / 2) ** 2 + np.cos(lat)[:, None] * np.cos(lat)[None, :] * np.sin(dlon / 2) ** 2
    dist = 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))
    return pd.DataFrame((dist + dist.T) / 2, index=labels, columns=labels)


def script_code(script: str) -> str:
    """ISO 15924 code of a script given by code ('Latn') or English name ('Latin')."""
    if script in SCRIPT_NAMES:
        return script
    by_name = {name.lower(): code for code, name in SCRIPT_NAMES.items()}
    if script.lower() not in by_name:
        raise DataError(
            f"unknown script {script!r}; use an ISO 15924 code or a name of mwanda.udhr.SCRIPT_NAMES"
        )
    return by_name[script.lower()]


def same_script(scripts: Mapping[str, str]) -> pd.DataFrame:
    """Pairwise True where two languages are written in the same script (codes or names).

    Exact script identity: Japanese (Jpan) and Chinese (Hani) differ although both use Han.
    """
    codes = pd.Series({label: script_code(s) for label, s in scripts.items()}, dtype=object)
    return pd.DataFrame(
        codes.to_numpy()[:, None] == codes.to_numpy()[None, :], index=codes.index, columns=codes.index
    )


def to_subset(
    matrix: pd.DataFrame, subset: Sequence[str], reduce: Literal["min", "mean", "max"] = "min"
) -> pd.Series:
    """Every language outside ``subset``: its distance to the subset (``reduce`` over the members).

    ``min`` is the distance to the nearest calibration language; on a ``same_script`` matrix,
    ``max`` says whether a language shares a script with any of them. Unknown members are refused
    before anything is computed.
    """
    unknown = [c for c in subset if c not in matrix.columns]
    if unknown or not subset:
        raise DataError(
            f"subset members {unknown or '(none given)'} are not in the matrix; "
            f"choose among {list(matrix.columns)}"
        )
    if reduce not in ("min", "mean", "max"):
        raise DataError(f"reduce must be 'min', 'mean' or 'max', not {reduce!r}")
    outside = [c for c in matrix.index if c not in set(subset)]
    return getattr(matrix.loc[outside, list(subset)], reduce)(axis=1)
