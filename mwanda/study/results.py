"""The results store as tidy pandas DataFrames.

``load()`` returns one row per config x language x metric, with every config field as a
column. ``with_dense()`` joins each row to the dense baseline evaluated the same way and adds
the relative increase; ``equity()`` summarizes how evenly a method hurts languages (beyond the
paper: mean relative increase, the worst language, and the spread across languages). A damaged
record file is skipped with a ``RecordWarning`` that names it; the other records still load.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from mwanda.study import shipped, uncertainty
from mwanda.study.experiments import RESULTS_DIR, ExperimentConfig, read_record

# Config fields that define "evaluated the same way": a pruned row joins the dense row that
# matches on all of these (plus language and metric).
EVAL_KEYS = (
    "profile",
    "model",
    "model_revision",  # a dense baseline of other weights under the same name must not join
    "corpus",
    "eval_dataset",
    "eval_revision",
    "dtype",
    "eval_split",
    "eval_max_chars",
    "eval_sample",
    "eval_window",
)


def read_records(results_dir: str | Path = RESULTS_DIR) -> list[dict]:
    """Every valid record under ``results_dir`` (temporary files of writers in progress are
    skipped) and, for the shared results folder, every shipped record not computed there too
    (``shipped``), in key order. A damaged file is skipped with a warning naming it, so one bad
    file in a shared results directory does not stop every notebook and report."""
    skip = "skipped it; run its config again (mwanda sweep lists it as pending) or delete it"
    found = {}
    for path in sorted(Path(results_dir).glob("*.json")):
        rec = read_record(path, on_damage=skip)
        if rec is not None:
            found[rec["key"]] = rec
    if shipped.serves(results_dir):
        for path in sorted(shipped.SHIPPED_DIR.glob(f"*{shipped.SUFFIX}")):
            key = path.name.removesuffix(shipped.SUFFIX)
            rec = None if key in found else read_record(path, on_damage=skip, reader=shipped.read)
            if rec is not None:
                found[key] = rec
    return [found[k] for k in sorted(found)]


def load(results_dir: str | Path = RESULTS_DIR, **filters) -> pd.DataFrame:
    """Tidy frame: config columns + key + language, metric, value. ``filters``: column=value(s)."""
    return frame(read_records(results_dir), **filters)


def frame(records: list[dict], **filters) -> pd.DataFrame:
    """``load``'s frame of the given records (each key once, in key order as ``load`` reads them):
    a sweep that holds its records need not read every file of a large results directory."""
    records = sorted({r["key"]: r for r in records}.values(), key=lambda r: r["key"])
    if not records:
        return pd.DataFrame(columns=["key", "language", "metric", "value"])
    metrics = pd.DataFrame.from_records(
        [
            row | {"key": rec["key"], "paragraph_nll": _paragraph_nll(rec, row)}
            for rec in records
            for row in rec["metrics"]
        ],
        columns=["language", "metric", "value", "key", "paragraph_nll"],
    )
    configs = pd.DataFrame.from_records(
        [
            {
                "key": r["key"],
                **_flat(r["config"]),
                "achieved_sparsity": (r["pruning"] or {}).get("achieved_sparsity"),
            }
            for r in records
        ]
    )
    configs["label"] = [method_label(r) for r in configs.itertuples()]
    df = metrics.merge(configs, on="key", how="left")
    for col, want in filters.items():
        if col not in df.columns:
            raise KeyError(f"no column {col!r} to filter on; columns: {sorted(df.columns)}")
        df = df[df[col].isin(want if isinstance(want, (list, tuple, set)) else [want])]
    return df.reset_index(drop=True)


def _paragraph_nll(rec: dict, row: dict) -> tuple[float, ...] | None:
    """The per-paragraph NLLs behind a bits-per-byte row, if its record holds them."""
    parts = rec.get("paragraphs", {}).get(row["metric"], {}).get(row["language"])
    return None if parts is None else tuple(parts["nll"])


def with_dense(df: pd.DataFrame) -> pd.DataFrame:
    """Add ``dense`` (the baseline's value) and ``rel_increase`` = value / dense - 1 to pruned
    rows, and the baseline's paragraph NLLs (``dense_paragraph_nll``) when the frame has them."""
    on = [k for k in EVAL_KEYS if k in df.columns] + ["language", "metric"]
    carried = {"value": "dense", "paragraph_nll": "dense_paragraph_nll"}
    carried = {k: v for k, v in carried.items() if k in df.columns}
    dense = df[df["method"] == "dense"][on + list(carried)].drop_duplicates(on).rename(columns=carried)
    out = df[df["method"] != "dense"].merge(dense, on=on, how="left")
    out["rel_increase"] = out["value"] / out["dense"] - 1
    return out


def equity(df: pd.DataFrame, metric: str = "bpb", by: tuple[str, ...] = ("method",)) -> pd.DataFrame:
    """Per group of ``by`` (averaged over everything else, e.g. seeds): mean relative increase
    over dense, the worst language and its increase, and the spread (max - min, std) across
    languages. Expects ``with_dense`` output."""
    d = df[df["metric"] == metric]
    per_lang = d.groupby([*by, "language"], dropna=False)["rel_increase"].mean().reset_index()
    rows = []
    for group, g in per_lang.groupby(list(by), dropna=False):
        worst = g.loc[g["rel_increase"].idxmax()]
        group = group if isinstance(group, tuple) else (group,)
        rows.append(
            dict(zip(by, group, strict=True))
            | {
                "mean_rel_increase": g["rel_increase"].mean(),
                "worst_language": worst["language"],
                "worst_rel_increase": worst["rel_increase"],
                "spread": g["rel_increase"].max() - g["rel_increase"].min(),
                "std": g["rel_increase"].std(ddof=0),
                "languages": len(g),
            }
        )
    return pd.DataFrame(rows)


def compare(
    df: pd.DataFrame, base: str, other: str, metric: str = "bpb", by: tuple[str, ...] = ("sparsity",)
) -> pd.DataFrame:
    """Method label ``other`` against ``base`` per group of ``by`` (expects ``with_dense`` output).

    Columns: the two labels, each one's mean relative increase over languages and seeds
    (``base_mean``, ``other_mean``), ``difference`` (other - base; negative: ``other`` degrades
    less), ``languages_better`` of ``languages`` (per-language means over seeds, other strictly
    lower), the paired per-seed differences of the means over languages (``seed_min``,
    ``seed_max``, ``seeds``); ``low`` and ``high``, the 95% interval of ``difference`` from the
    paired bootstrap over evaluation paragraphs and seeds (``uncertainty.paired_bootstrap``),
    with the ``paragraphs`` it resampled; ``h_low``, ``h_high`` and ``p_value``, the interval and
    two-sided p-value of the hierarchical bootstrap, which also resamples the languages and the
    ``pages`` the paragraphs come from (``uncertainty.hierarchical_bootstrap``); and
    ``verdict``, from the hierarchical interval: 'holds' if it is below 0, 'reversed' if above,
    else 'within noise'. Without paragraph NLLs in the records (an older record, a tokenizer
    without offsets) the intervals are NaN and the verdict falls back to the seeds: 'holds' if
    ``other`` is lower in every seed, 'reversed' if higher in every seed.
    """
    d = df[(df["metric"] == metric) & df["label"].isin([base, other])]
    d = d.assign(label=d["label"].astype(str))
    rows = []
    for group, g in d.groupby(list(by)):
        group = group if isinstance(group, tuple) else (group,)
        per_lang = g.groupby(["label", "language"])["rel_increase"].mean().unstack("label")
        per_seed = g.groupby(["label", "seed"])["rel_increase"].mean().unstack("label")
        for label in (base, other):  # one seed (magnitude reads no data) pairs with every seed
            if per_seed[label].count() == 1:
                per_seed[label] = per_seed[label].dropna().iloc[0]
        per_seed = per_seed.dropna()
        gap = per_seed[other] - per_seed[base]
        interval, wide = _intervals(g, base, other, metric)
        if wide is not None:
            verdict = wide.verdict
        else:
            verdict = "holds" if (gap < 0).all() else "reversed" if (gap > 0).all() else "within noise"
        rows.append(
            dict(zip(by, group, strict=True))
            | {
                "base": base,
                "other": other,
                "base_mean": per_lang[base].mean(),
                "other_mean": per_lang[other].mean(),
                "difference": per_lang[other].mean() - per_lang[base].mean(),
                "languages_better": int((per_lang[other] < per_lang[base]).sum()),
                "languages": len(per_lang.dropna()),
                "seed_min": gap.min(),
                "seed_max": gap.max(),
                "seeds": len(gap),
                "low": math.nan if interval is None else interval.low,
                "high": math.nan if interval is None else interval.high,
                "paragraphs": 0 if interval is None else interval.paragraphs,
                "h_low": math.nan if wide is None else wide.low,
                "h_high": math.nan if wide is None else wide.high,
                "p_value": math.nan if wide is None else wide.p_value,
                "pages": 0 if wide is None else wide.pages,
                "verdict": verdict,
            }
        )
    return pd.DataFrame(rows)


def language_gap(
    df: pd.DataFrame,
    label: str,
    first: tuple[str, ...],
    metric: str = "bpb",
    by: tuple[str, ...] = ("sparsity",),
) -> pd.DataFrame:
    """Under one method ``label``, the languages ``first`` against all the others, as ``compare``
    rows (expects ``with_dense`` output): ``other`` names ``first`` (their mean relative increase
    is ``other_mean``), ``base`` the rest; ``difference`` = other - base, so negative means the
    ``first`` languages degrade less; ``languages_better`` counts the rest that degrade more than
    the ``first`` languages' mean. Intervals: pages and seeds (``low``, ``high``), and languages
    within each group too (``h_low``, ``h_high``, ``p_value``: ``uncertainty.gap_bootstrap``)."""
    d = df[(df["metric"] == metric) & (df["label"].astype(str) == label)]
    rows = []
    for group, g in d.groupby(list(by)):
        group = group if isinstance(group, tuple) else (group,)
        per_lang = g.groupby("language")["rel_increase"].mean()
        inside = per_lang.index.isin(first)
        if not inside.any() or inside.all():
            raise ValueError(f"{label}: the languages {first} and the others both need a record.")
        a, b = per_lang[inside].mean(), per_lang[~inside].mean()
        per_seed = g.groupby(["seed", g["language"].isin(first)])["rel_increase"].mean().unstack()
        gap = per_seed[True] - per_seed[False]
        narrow, wide = _gap_intervals(g, list(per_lang.index), first, metric)
        verdict = (
            wide.verdict
            if wide
            else "holds"
            if (gap < 0).all()
            else "reversed"
            if (gap > 0).all()
            else "within noise"
        )
        rows.append(
            dict(zip(by, group, strict=True))
            | {
                "base": f"the other {int((~inside).sum())} languages",
                "other": ", ".join(first) if len(first) > 1 else first[0],
                "base_mean": b,
                "other_mean": a,
                "difference": a - b,
                "languages_better": int((per_lang[~inside] > a).sum()),
                "languages": int((~inside).sum()),
                "seed_min": gap.min(),
                "seed_max": gap.max(),
                "seeds": len(gap),
                "low": narrow.low if narrow else math.nan,
                "high": narrow.high if narrow else math.nan,
                "paragraphs": narrow.paragraphs if narrow else 0,
                "h_low": wide.low if wide else math.nan,
                "h_high": wide.high if wide else math.nan,
                "p_value": wide.p_value if wide else math.nan,
                "pages": wide.pages if wide else 0,
                "verdict": verdict,
            }
        )
    return pd.DataFrame(rows)


def _gap_intervals(g: pd.DataFrame, langs: list[str], first: tuple[str, ...], metric: str) -> tuple:
    """``language_gap``'s two bootstraps of one group (pages and seeds; and languages), or Nones
    without paragraph NLLs."""
    if not _has_paragraphs(g):
        return None, None
    cells = _paragraph_cells(g, ("seed", "language"))
    nll = np.array([[cells[(s, lang)] for lang in langs] for s in sorted(g["seed"].unique())])
    dense = _dense_nll(g, langs)
    pages, mask = paragraph_pages(g.iloc[0], metric, dense.shape[1]), np.isin(langs, first)
    return (
        uncertainty.gap_bootstrap(nll, dense, mask, pages, languages=False),
        uncertainty.gap_bootstrap(nll, dense, mask, pages),
    )


def describe(row, names=None, digits: int = 2) -> str:
    """One sentence for a ``compare`` row: both means, the difference with its 95% intervals and
    what each resampled, the languages where ``other`` is lower, and the verdict (hierarchical).
    ``names``: label -> display name (default: the labels)."""
    name = (lambda label: label) if names is None else names
    r = row  # a Series from iterrows, or a dict: both index by column name
    pts = lambda v: f"{v * 100:+.{digits}f}"  # noqa: E731
    seeds = f"{r['seeds']} seed{'s' if r['seeds'] > 1 else ''}"
    if r["paragraphs"]:
        spread = (
            f"95% interval {pts(r['low'])} to {pts(r['high'])} over {r['paragraphs']} paragraphs x {seeds}"
        )
        if r.get("pages"):
            wide = f"{r['languages']} languages, {r['pages']} pages, {seeds}"
            spread += f"; {pts(r['h_low'])} to {pts(r['h_high'])} over {wide}"
    else:
        spread = f"per seed {pts(r['seed_min'])} to {pts(r['seed_max'])}, {seeds}; no paragraph data"
    means = [f"{name(r[k])} {r[f'{k}_mean']:+.{digits}%}" for k in ("other", "base")]
    return (
        f"{means[0]} vs {means[1]}: "
        f"{pts(r['difference'])} points ({spread}); lower in {r['languages_better']} of "
        f"{r['languages']} languages: {r['verdict']}."
    )


def _intervals(
    g: pd.DataFrame, base: str, other: str, metric: str
) -> tuple[uncertainty.Interval | None, uncertainty.HierarchicalInterval | None]:
    """The paired and the hierarchical bootstrap of one comparison group, or Nones without
    paragraph NLLs. Seeds pair by number (a label with one seed, such as magnitude pruning, pairs
    with all of them); languages are those both labels have in every seed."""
    if not _has_paragraphs(g):
        return None, None
    seeds = {label: sorted(g.loc[g["label"] == label, "seed"].unique()) for label in (base, other)}
    if len(seeds[base]) > 1 and len(seeds[other]) > 1:
        seeds[base] = seeds[other] = sorted(set(seeds[base]) & set(seeds[other]))
    cells = _paragraph_cells(g, ("label", "seed", "language"))
    have = [{k[2] for k in cells if k[:2] == (label, s)} for label in (base, other) for s in seeds[label]]
    langs = sorted(set.intersection(*have))

    def nll(label: str) -> np.ndarray:
        return np.array([[cells[(label, s, lang)] for lang in langs] for s in seeds[label]])

    dense = _dense_nll(g, langs)
    pages = paragraph_pages(g.iloc[0], metric, dense.shape[1])
    return (
        uncertainty.paired_bootstrap(nll(base), nll(other), dense),
        uncertainty.hierarchical_bootstrap(nll(base), nll(other), dense, pages),
    )


def _has_paragraphs(g: pd.DataFrame) -> bool:
    """Whether every row of ``g`` carries its and its dense baseline's paragraph NLLs."""
    columns = ("paragraph_nll", "dense_paragraph_nll")
    return all(c in g.columns and not g[c].isna().any() for c in columns)


def _paragraph_cells(g: pd.DataFrame, keys: tuple[str, ...]) -> dict[tuple, tuple]:
    """``g``'s paragraph NLLs by the values of ``keys``; two rows of one cell are refused."""
    cells: dict[tuple, tuple] = {}
    for key, nll in zip(zip(*(g[k] for k in keys), strict=True), g["paragraph_nll"], strict=True):
        if key in cells:
            raise ValueError(
                f"two records for ({', '.join(keys)}) = {key}: filter the frame to one evaluation "
                "(eval_split, eval_max_chars, ...) before comparing."
            )
        cells[key] = nll
    return cells


def _dense_nll(g: pd.DataFrame, langs: list[str]) -> np.ndarray:
    """The dense baseline's paragraph NLLs of ``langs``: [L, P]."""
    by_lang = g.drop_duplicates("language").set_index("language")
    return np.array(by_lang.loc[langs, "dense_paragraph_nll"].tolist())


def paragraph_pages(row, metric: str, n: int) -> np.ndarray:
    """The help page of each of the ``n`` evaluation paragraphs behind ``metric`` in the
    evaluation ``row`` describes (its corpus, split, characters and sample): the clusters of the
    hierarchical bootstrap. A text without pages (the UDHR, a Hub dataset) makes every paragraph
    its own cluster."""
    from mwanda import data

    if metric != "bpb" or row.get("corpus") != "embedded":
        return np.arange(n)
    max_chars = None if pd.isna(row["eval_max_chars"]) else int(row["eval_max_chars"])
    sample = row.get("eval_sample") or "first"
    ids = data.eval_ids(row["eval_split"], max_chars, sample)
    if len(ids) != n:
        raise ValueError(
            f"the records hold {n} paragraphs but the {row['eval_split']} text is {len(ids)} now: "
            "they were evaluated on another text; recompute them (`make figures` names stale ones)."
        )
    return np.array([data.page_of(i) for i in ids])


def method_label(row) -> str:
    """'mwanda', 'mwanda+ria' (RIA with M-Wanda's activation term), 'mwanda+sparsegpt', 'wanda+owl', ..."""
    name = f"mwanda+{row.method}" if row.method in ("ria", "sparsegpt") and row.language_aware else row.method
    return (
        name if row.allocation in ("uniform", None) or row.method == "dense" else f"{name}+{row.allocation}"
    )


def _flat(config: dict) -> dict:
    """Lists (languages, tasks) become comma-joined strings so they can be grouped on."""
    return {k: ",".join(map(str, v)) if isinstance(v, list) else v for k, v in config.items()}


def config_of(record: dict) -> ExperimentConfig:
    c = {k: tuple(v) if isinstance(v, list) else v for k, v in record["config"].items()}
    return ExperimentConfig(**c)
