"""One figure style and one way to save figures (PNG + PDF + the numbers as CSV under
figures/<notebook-stem>/).

Saved files carry no timestamps or software versions, so regenerating an unchanged figure
rewrites identical bytes and git shows only real changes.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib.colors as mcolors
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.ticker import PercentFormatter

from mwanda import REPO_ROOT, data

# 10 significant digits: a float32 round-trips (it needs 9); float64 digits past that are noise here.
CSV_FLOAT_FORMAT = "%.10g"
AXIS_LABELS = {
    "value": "bits per byte",
    "rel_increase": "increase over dense",
    "dense": "dense bits per byte",
}
# One colour per method and one order, for every figure of the repository (legends, bars, lines).
METHOD_COLORS = {
    "dense": "#4d4d4d",
    "magnitude": "#a6a6a6",
    "wanda": "#1f77b4",
    "ria": "#9467bd",
    "mwanda": "#d62728",
    "mwanda+ria": "#ff7f0e",
    "sparsegpt": "#2ca02c",
    "mwanda+sparsegpt": "#8c564b",
}
METHOD_ORDER = tuple(METHOD_COLORS)
METHOD_NAMES = {
    "dense": "dense",
    "magnitude": "magnitude",
    "wanda": "Wanda",
    "ria": "RIA",
    "mwanda": "M-Wanda",
    "mwanda+ria": "M-Wanda + RIA",
    "sparsegpt": "SparseGPT",
    "mwanda+sparsegpt": "SparseGPT, language-aware",
}
# Layerwise allocation shades its method's colour: OWL lighter, CWL darker, so "mwanda",
# "mwanda+owl" and "mwanda+cwl" read as one family and three schemes.
ALLOCATION_SHADES = {"": 0.0, "owl": 0.45, "cwl": -0.4}
ALLOCATION_NAMES = {"owl": "OWL", "cwl": "CWL"}
HELD_OUT = "held out"  # the role notebooks give languages outside the calibration set
# Groups that are not methods (calibration sets, evaluation suites): fixed colours unlike the methods'.
GROUP_COLORS = ("#17becf", "#bcbd22", "#e377c2", "#7f7f7f", "#393b79", "#637939")


def set_style() -> None:
    """The repository's figure style: seaborn whitegrid, compact fonts, 150 dpi."""
    sns.set_theme(style="whitegrid", context="paper", font_scale=1.1)
    plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 150, "savefig.bbox": "tight", "pdf.fonttype": 42})


def figures_dir(profile: str) -> Path:
    """Where a notebook run by hand saves its figures: build/<profile>/figures (a profile file:
    its name without .yaml). The committed figures/ is written only by `make figures`, which
    passes it explicitly, so exploring a notebook never dirties the repository."""
    return REPO_ROOT / "build" / Path(profile).stem / "figures"


def savefig(fig: plt.Figure, name: str, notebook: str, figures_dir: str | Path, data: pd.DataFrame) -> None:
    """Save ``fig`` as <figures_dir>/<notebook>/<name>.png and .pdf (byte-stable), and the tidy
    numbers it draws, ``data``, beside it as <name>.csv: what ``figcheck`` compares, so that a
    rerun on another machine can say "same within 1e-6" where the pixels differ."""
    if not isinstance(data, pd.DataFrame) or data.empty:
        raise ValueError(f"figure {name!r}: pass the numbers it draws as a non-empty DataFrame (data=...)")
    out = Path(figures_dir) / Path(notebook).stem
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / f"{name}.png", metadata={"Software": None})
    fig.savefig(out / f"{name}.pdf", metadata={"Creator": None, "Producer": None, "CreationDate": None})
    data.to_csv(out / f"{name}.csv", index=False, float_format=CSV_FLOAT_FORMAT, lineterminator="\n")


def savetable(data: pd.DataFrame, name: str, notebook: str, figures_dir: str | Path) -> None:
    """Save numbers that no figure draws (a notebook's comparisons) as <name>.csv beside its
    figures, where ``figcheck`` compares and syncs them like a figure's numbers."""
    if not isinstance(data, pd.DataFrame) or data.empty:
        raise ValueError(f"table {name!r}: pass a non-empty DataFrame")
    out = Path(figures_dir) / Path(notebook).stem
    out.mkdir(parents=True, exist_ok=True)
    data.to_csv(out / f"{name}.csv", index=False, float_format=CSV_FLOAT_FORMAT, lineterminator="\n")


def split_label(label: str) -> tuple[str, str]:
    """'mwanda+cwl' -> ('mwanda', 'cwl'); 'mwanda+sparsegpt' -> ('mwanda+sparsegpt', '')."""
    base, _, last = label.rpartition("+")
    return (base, last) if base and last in ALLOCATION_NAMES else (label, "")


def label_color(label: str) -> str:
    """Colour of a method label ('wanda', 'mwanda+cwl', ...): its method's colour, lighter for
    OWL and darker for CWL; grey for a label that is no method."""
    method, allocation = split_label(label)
    if method not in METHOD_COLORS:
        return "#7f7f7f"
    rgb, shade = mcolors.to_rgb(METHOD_COLORS[method]), ALLOCATION_SHADES[allocation]
    target = 1.0 if shade > 0 else 0.0
    return mcolors.to_hex([c + abs(shade) * (target - c) for c in rgb])


def label_name(label: str) -> str:
    """What a legend shows for a label: 'mwanda+cwl' -> 'M-Wanda + CWL'; other labels unchanged."""
    method, allocation = split_label(label)
    if method not in METHOD_NAMES:
        return label
    return METHOD_NAMES[method] + (f" + {ALLOCATION_NAMES[allocation]}" if allocation else "")


def label_order(labels) -> list[str]:
    """Labels in the repository's one order: by method (METHOD_ORDER), then uniform, OWL, CWL;
    labels that are no method keep their order, after the methods."""
    unique = list(dict.fromkeys(labels))

    def key(label: str) -> tuple[int, int, int]:
        method, allocation = split_label(label)
        if method not in METHOD_ORDER:
            return (len(METHOD_ORDER), 0, unique.index(label))
        return (METHOD_ORDER.index(method), list(ALLOCATION_SHADES).index(allocation), 0)

    return sorted(unique, key=key)


def palette(labels) -> dict[str, str]:
    """Label -> colour: method labels by ``label_color``, other labels (calibration sets,
    evaluation suites) from GROUP_COLORS in the given order."""
    others = iter(GROUP_COLORS)
    return {
        lab: label_color(lab) if split_label(lab)[0] in METHOD_COLORS else next(others, "#7f7f7f")
        for lab in label_order(labels)
    }


def language_name(code: str) -> str:
    """English name of a language code: data/languages.yaml, else ISO 639 (pycountry), else the code."""
    table = data.language_table()
    if code in table:
        return table[code].name
    import pycountry

    found = pycountry.languages.get(alpha_2=code) or pycountry.languages.get(alpha_3=code)
    return found.name if found else code


def language_key(codes, roles: dict | None = None) -> str:
    """A caption line: 'en English · de German · ...', and how held-out languages are marked."""
    key = " · ".join(f"{c} {language_name(c)}" for c in codes)
    if roles and any(r == HELD_OUT for r in roles.values()):
        key += f"   (italic grey: {HELD_OUT}, not in the calibration set)"
    return key


def percent_axis(axis, decimals: int | None = None) -> None:
    """Shares (0.5) shown as percent (50%) on an x or y axis."""
    axis.set_major_formatter(PercentFormatter(1.0, decimals=decimals))


def _mark_held_out(ax, roles: dict | None) -> None:
    """Held-out languages' tick labels in italic grey."""
    for tick in ax.get_xticklabels():
        if roles and roles.get(tick.get_text()) == HELD_OUT:
            tick.set(style="italic", color="0.45")


def bars_per_language(
    df,
    y: str = "rel_increase",
    hue: str = "label",
    order=None,
    title: str = "",
    roles: dict | None = None,
    colors: dict | None = None,
    ylabel: str | None = None,
    percent: bool = False,
    per_row: int = 10,
    chance: float | None = None,
) -> plt.Figure:
    """Bars per language (mean over seeds, whiskers = min..max over seeds), one colour per label,
    in the repository's method order. Languages are faceted into rows of ``per_row`` so the chart
    reads at notebook width; codes on the axis, names in the caption; held-out languages (per
    ``roles``) in italic grey. ``percent``: y is a share (accuracy), shown in percent.
    ``chance``: a dashed line at that value (a task's chance accuracy), in the legend; a bar of
    exactly 0 is then marked "0" so it does not read as missing data."""
    order = list(order) if order is not None else list(dict.fromkeys(df["language"]))
    hue_order = label_order(df[hue])
    colors = colors or palette(hue_order)
    rows = [order[i : i + per_row] for i in range(0, len(order), per_row)]
    width = max(5.0, 0.2 * len(rows[0]) * (len(hue_order) + 1) + 1.5)
    fig, axes = plt.subplots(
        len(rows), 1, figsize=(min(width, 9.5), 2.6 * len(rows)), sharey=True, squeeze=False
    )
    for ax, langs in zip(axes[:, 0], rows, strict=True):
        sns.barplot(
            data=df[df["language"].isin(langs)],
            x="language",
            y=y,
            hue=hue,
            order=langs,
            hue_order=hue_order,
            errorbar=("pi", 100),
            palette=colors,
            ax=ax,
            err_kws={"linewidth": 1},
            legend=ax is axes[0, 0],
        )
        _label_y(ax, y)
        if ylabel:
            ax.set_ylabel(ylabel)
        if percent:
            percent_axis(ax.yaxis)
        ax.set(xlabel="")
        _mark_held_out(ax, roles)
        if chance is not None:
            _mark_chance(ax, chance, legend=ax is axes[0, 0])
    top = axes[0, 0]
    name_legend(top, outside=True)
    top.set_title(title)
    add_language_key(fig, order, roles)
    return fig


def _mark_chance(ax, chance: float, legend: bool) -> None:
    """A dashed line at ``chance``, and "0" over bars of exactly 0 (not missing data)."""
    ax.axhline(chance, color="#555555", ls="--", lw=1, label="chance" if legend else None)
    for bar in ax.patches:  # seaborn's bars; an empty hue slot has no height
        if bar.get_height() == 0 and bar.get_width() > 0:
            x = bar.get_x() + bar.get_width() / 2
            ax.annotate("0", (x, 0), ha="center", fontsize=7, xytext=(0, 2), textcoords="offset points")


def name_legend(ax, outside: bool = False) -> None:
    """Redraw ``ax``'s legend with the method names ('M-Wanda + CWL', not 'mwanda+cwl')."""
    handles, labels = ax.get_legend_handles_labels()
    where = dict(bbox_to_anchor=(1.01, 1), loc="upper left") if outside else {}
    ax.legend(handles, [label_name(lab) for lab in labels], frameon=False, fontsize="small", **where)


def legend_patches(colors: dict[str, str]) -> list:
    """Legend handles for a label -> colour mapping drawn without seaborn (plain bars)."""
    from matplotlib.patches import Patch

    return [Patch(color=c, label=label_name(lab)) for lab, c in colors.items()]


def add_language_key(fig: plt.Figure, codes, roles: dict | None = None) -> None:
    """Language names under the figure: codes stay on the axes, the caption names them."""
    fig.text(0.01, -0.02, _wrap(language_key(list(codes), roles)), fontsize="x-small", va="top", ha="left")


def heatmap(frame: pd.DataFrame, ax, order=None, **kwargs) -> pd.DataFrame:
    """``sns.heatmap`` of ``frame`` with horizontal row labels; ``order`` (e.g. the profile's
    languages) sets the row order, rows it does not name follow in their own order. Returns
    the frame as drawn (the numbers to save beside the figure)."""
    if order is not None:
        first = [row for row in order if row in frame.index]
        frame = frame.loc[first + [row for row in frame.index if row not in set(first)]]
    sns.heatmap(frame, ax=ax, **kwargs)
    ax.tick_params(axis="y", rotation=0)
    return frame


def _wrap(text: str, width: int = 130) -> str:
    return "\n".join(textwrap.wrap(text, width))


def _label_y(ax, y: str) -> None:
    ax.set_ylabel(AXIS_LABELS.get(y, y.replace("_", " ")))
    if y == "rel_increase":
        percent_axis(ax.yaxis)


def lines_vs_sparsity(
    df, y: str = "value", hue: str = "language", title: str = "", roles: dict | None = None
) -> plt.Figure:
    """One line per language over sparsity (percent). With ``roles`` (language -> role) the
    lines are coloured by group, not by language: English black, the other calibration languages
    blue, held-out languages orange and dashed; English, the held-out languages and the two
    highest at the last sparsity are named at the line's end. Without roles, a hue per language."""
    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    if not roles:
        sns.lineplot(data=df, x="sparsity", y=y, hue=hue, marker="o", ax=ax, errorbar=None)
    else:
        lines = df.groupby([hue, "sparsity"])[y].mean().unstack("sparsity")
        last = lines.iloc[:, -1]
        named = {
            "en",
            *(lang for lang in lines.index if roles.get(lang) == HELD_OUT),
            *last.nlargest(2).index,
        }
        for lang, row in lines.iterrows():
            group = (
                "English" if lang == "en" else "held out" if roles.get(lang) == HELD_OUT else "calibration"
            )
            style = LINE_GROUPS[group]
            ax.plot(row.index, row.values, marker="o", ms=3, label=style["label"], **style["draw"])
            if lang in named:
                ax.annotate(
                    lang,
                    (row.index[-1], row.iloc[-1]),
                    xytext=(4, 0),
                    textcoords="offset points",
                    fontsize=7,
                    va="center",
                    color=style["draw"]["color"],
                )
        handles, labels = ax.get_legend_handles_labels()
        unique = dict(zip(labels, handles, strict=True))
        ax.legend(unique.values(), unique.keys(), frameon=False, fontsize="small", loc="upper left")
        add_language_key(fig, list(lines.index))  # names only: the legend says which are held out
    _label_y(ax, y)
    percent_axis(ax.xaxis)
    ax.set(title=title)
    return fig


# How lines_vs_sparsity draws each group of languages.
LINE_GROUPS = {
    "English": {"label": "English", "draw": {"color": "black", "lw": 2.2, "zorder": 3}},
    "calibration": {
        "label": "other calibration languages",
        "draw": {"color": "#4c72b0", "lw": 1, "alpha": 0.6},
    },
    "held out": {"label": "held out", "draw": {"color": "#dd8452", "lw": 1.4, "ls": "--"}},
}


def differences(rows, title: str = "", names=None) -> plt.Figure:
    """``results.compare`` rows as points with their 95% intervals, in percentage points of mean
    relative increase (other minus base; left of the dashed line: ``other`` degrades less).
    Thick bar: the hierarchical bootstrap (languages, pages, seeds), which the verdicts use; thin
    line: paragraphs and seeds only. One line per row, labelled by ``other`` (and its base, when
    the rows have several) and the sparsity."""
    name = names or label_name
    rows = rows.reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(7, 0.32 * len(rows) + 1.3))
    ypos = np.arange(len(rows))[::-1]
    pts = {c: rows[c].to_numpy(dtype=float) * 100 for c in ("difference", "low", "high", "h_low", "h_high")}
    colors = [label_color(str(o)) for o in rows["other"]]
    ax.hlines(ypos, pts["low"], pts["high"], color=colors, lw=1)
    ax.hlines(ypos, pts["h_low"], pts["h_high"], color=colors, lw=4, alpha=0.45)
    ax.scatter(pts["difference"], ypos, color=colors, s=18, zorder=3)
    ax.axvline(0, color="#555555", ls="--", lw=1)
    bases = list(dict.fromkeys(name(str(b)) for b in rows["base"]))
    pairs = zip(rows["other"], rows["base"], rows["sparsity"], strict=True)
    vs = (lambda b: "") if len(bases) == 1 else (lambda b: f" vs {name(str(b))}")
    ax.set_yticks(ypos, [f"{name(str(o))}{vs(b)}, {sp:.0%}" for o, b, sp in pairs])
    against = bases[0] if len(bases) == 1 else "the second method"
    ax.set(xlabel=f"difference to {against} (points)", title=title)
    return fig


def by_replicate(table, names: dict[str, str], title: str = "") -> plt.Figure:
    """Each primary claim's effect on each training seed's model (``replicates.primary_comparisons``
    rows with ``training_seed``), one panel per claim on its own scale: a point per model with the
    hierarchical 95% interval; left of the dashed line is the claim's direction (P1: English lower)."""
    claims_ = list(dict.fromkeys(table["claim"]))
    seeds = sorted(table["training_seed"].unique())
    fig, axes = plt.subplots(
        len(claims_), 1, figsize=(7, 0.45 * len(seeds) * len(claims_) + 1.2), squeeze=False
    )
    for ax, claim in zip(axes[:, 0], claims_, strict=True):
        part = table[table["claim"] == claim].set_index("training_seed").loc[seeds]
        y = np.arange(len(seeds))[::-1]
        pts = {c: part[c].to_numpy(dtype=float) * 100 for c in ("difference", "h_low", "h_high")}
        colors = [f"C{k}" for k in range(len(seeds))]
        ax.hlines(y, pts["h_low"], pts["h_high"], color=colors, lw=3, alpha=0.6)
        ax.scatter(pts["difference"], y, color=colors, s=18, zorder=3)
        ax.axvline(0, color="#555555", ls="--", lw=1)
        ax.set_yticks(y, [f"seed {n}" for n in seeds])
        ax.set_ylim(-0.7, len(seeds) - 0.3)
        ax.set_title(f"{claim}: {names.get(claim, claim)}", fontsize="medium", loc="left")
    axes[-1, 0].set_xlabel("effect (points of mean relative increase; 95% over languages, pages, seeds)")
    fig.suptitle(title)
    fig.tight_layout()
    return fig
