"""The primary claims (``data/primary_claims.yaml``) on each of several trained models.

One model answers "does the effect hold for this model?"; whether it holds for the *recipe* needs
models trained with other seeds (the same data, tokenizer sampling, initialisation and batches
drawn differently: ``make model SEED=N``). This module runs the five primary comparisons on one
model at a time, with the same configs the notebooks 01, 04, 05 and 07 use (so the default model's
records are reused), and summarises the spread of each effect across models.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mwanda.study import claims, results, sweep

TINY_MODEL = "data/models/tiny-ml-llama"  # the embedded profile's model, training seed 0
# What each primary claim compares here, in a figure's few words (data/primary_claims.yaml says more).
COMPARISONS = {
    "P1": "English vs the other 19 languages, Wanda at 60%",
    "P2": "M-Wanda vs Wanda at 50%",
    "P3": "M-Wanda vs Wanda at 60%",
    "P4": "M-Wanda + CWL vs M-Wanda (uniform) at 60%",
    "P5": "M-Wanda vs Wanda outside a 4-language calibration set, 50%",
}


def training_replicates(model: str, training_seeds: list[int]) -> dict[int, str]:
    """Training seed -> model path: the tiny model's replicates (``tiny-ml-llama-seed<N>``) when
    ``model`` is the tiny model, else ``model`` alone (replicates exist for the tiny model only)."""
    if model != TINY_MODEL:
        return {0: model}
    return {n: TINY_MODEL if n == 0 else f"{TINY_MODEL}-seed{n}" for n in training_seeds}


def run_primary(
    profile: str,
    results_dir: str | Path,
    model: str,
    seeds: list[int],
    subset: list[str],
    calib_langs: list[str],
) -> pd.DataFrame:
    """Every record the five primary comparisons need on ``model`` (test split, no UDHR, no tasks,
    as 01 and 07 evaluate): Wanda and M-Wanda at 50% and 60%, M-Wanda + CWL at 60%, and both
    methods calibrated on ``subset`` only at 50%; each over the calibration ``seeds``."""
    base = {"udhr": False, "tasks": [], "model": model}
    grid = dict(method=["wanda", "mwanda"], seed=seeds)
    parts = [
        sweep.run_grid(profile, results_dir, base=base, sparsity=[0.5, 0.6], **grid),
        sweep.run_grid(
            profile, results_dir, base=base | {"allocation": "cwl"}, method="mwanda", sparsity=0.6, seed=seeds
        ),
        sweep.run_grid(
            profile, results_dir, base=base, sparsity=0.5, calib_langs=[subset, calib_langs], **grid
        ),
    ]
    df = pd.concat(parts).drop_duplicates(["key", "language", "metric"])
    return df[df["metric"] == "bpb"]


def primary_comparisons(
    bpb: pd.DataFrame, subset: list[str], calib_langs: list[str], model: str = "", names=None
) -> pd.DataFrame:
    """P1-P5 on one model's ``run_primary`` frame as claim rows (``claims.rows`` with ``names``;
    settings start with ``model`` if given) with ``claim`` and ``model`` columns, verdicts
    Holm-adjusted over the five (``claims.holm_verdicts``): P1 English vs the other languages
    under Wanda at 60%; P2, P3 M-Wanda vs Wanda at 50%, 60%; P4 M-Wanda + CWL vs M-Wanda at 60%;
    P5 M-Wanda vs Wanda calibrated on ``subset`` only, on the languages outside it, at 50%."""
    full = bpb[bpb["calib_langs"] == ",".join(calib_langs)]
    uniform = full[full["allocation"] == "uniform"]
    outside = bpb[(bpb["calib_langs"] == ",".join(subset)) & ~bpb["language"].isin(subset)]
    n_out = outside["language"].nunique()
    parts = [
        ("P1", results.language_gap(uniform[uniform["sparsity"] == 0.6], "wanda", ("en",)), "Wanda"),
        ("P2", results.compare(uniform[uniform["sparsity"] == 0.5], "wanda", "mwanda"), ""),
        ("P3", results.compare(uniform[uniform["sparsity"] == 0.6], "wanda", "mwanda"), ""),
        ("P4", results.compare(full[full["sparsity"] == 0.6], "mwanda", "mwanda+cwl"), ""),
        (
            "P5",
            results.compare(outside, "wanda", "mwanda"),
            f"calibrated on {', '.join(subset)} only, {n_out} languages outside the subset",
        ),
    ]
    named = lambda setting: ", ".join(p for p in (model, setting) if p)  # noqa: E731
    table = pd.concat(
        [
            claims.rows(found, "test", named(setting), names).assign(claim=cid)
            for cid, found, setting in parts
        ],
        ignore_index=True,
    )
    return claims.holm_verdicts(table.assign(model=model))


def spread(table: pd.DataFrame) -> pd.DataFrame:
    """Per claim, the effect on each training seed's model (points of mean relative increase),
    their mean, min and max, and how many models' verdicts hold (``table``: ``primary_comparisons``
    rows with a ``training_seed`` column)."""
    effect = table.pivot_table(index="claim", columns="training_seed", values="difference") * 100
    out = effect.rename(columns=lambda n: f"seed {n}")
    out["mean"], out["min"], out["max"] = effect.mean(axis=1), effect.min(axis=1), effect.max(axis=1)
    out["models_holding"] = table.groupby("claim")["verdict"].apply(lambda v: int((v == "holds").sum()))
    out["models"] = table.groupby("claim")["training_seed"].nunique()
    return out
