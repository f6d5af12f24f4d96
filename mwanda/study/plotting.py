"""One figure style and one way to save figures (PNG + PDF under figures/<notebook-stem>/).

Saved files carry no timestamps or software versions, so regenerating an unchanged figure
rewrites identical bytes and git shows only real changes.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import seaborn as sns
from matplotlib.ticker import PercentFormatter

from mwanda import REPO_ROOT

FIGURES_DIR = REPO_ROOT / "figures"
# One colour per method, fixed across every figure of the repository.
AXIS_LABELS = {
    "value": "bits per byte",
    "rel_increase": "increase over dense",
    "dense": "dense bits per byte",
}
METHOD_COLORS = {
    "dense": "#4d4d4d",
    "magnitude": "#bdbdbd",
    "wanda": "#1f77b4",
    "ria": "#9467bd",
    "mwanda": "#d62728",
    "mwanda+ria": "#ff7f0e",
    "sparsegpt": "#2ca02c",
    "mwanda+sparsegpt": "#8c564b",
}


def set_style() -> None:
    """The repository's figure style: seaborn whitegrid, compact fonts, 150 dpi."""
    sns.set_theme(style="whitegrid", context="paper", font_scale=1.1)
    plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 150, "savefig.bbox": "tight", "pdf.fonttype": 42})


def figures_dir(profile: str) -> Path:
    """Where a notebook run by hand saves its figures: build/<profile>/figures (a profile file:
    its name without .yaml). The committed figures/ is written only by `make figures`, which
    passes it explicitly, so exploring a notebook never dirties the repository."""
    return REPO_ROOT / "build" / Path(profile).stem / "figures"


def savefig(fig: plt.Figure, name: str, notebook: str, figures_dir: str | Path = FIGURES_DIR) -> list[Path]:
    """Save ``fig`` as figures/<notebook>/<name>.png and .pdf (byte-stable); returns the paths."""
    out = Path(figures_dir) / Path(notebook).stem
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.png", out / f"{name}.pdf"]
    fig.savefig(paths[0], metadata={"Software": None})
    fig.savefig(paths[1], metadata={"Creator": None, "Producer": None, "CreationDate": None})
    return paths


def label_color(label: str) -> str:
    """Colour of a method label ('wanda', 'mwanda+cwl', ...): its method's, by longest prefix."""
    for key in sorted(METHOD_COLORS, key=len, reverse=True):
        if label.startswith(key):
            return METHOD_COLORS[key]
    return "#7f7f7f"


def bars_per_language(df, y: str = "rel_increase", hue: str = "label", order=None, ax=None, title: str = ""):
    """Bars per language (mean over seeds, whiskers = min..max), one colour per method label."""
    hue_order = list(dict.fromkeys(df[hue]))
    ax = ax or plt.subplots(figsize=(max(6, 0.45 * df["language"].nunique() * len(hue_order) ** 0.5), 3.2))[1]
    sns.barplot(
        data=df,
        x="language",
        y=y,
        hue=hue,
        order=order,
        hue_order=hue_order,
        errorbar=("pi", 100),
        palette={h: label_color(h) for h in hue_order},
        ax=ax,
        err_kws={"linewidth": 1},
    )
    _label_y(ax, y)
    ax.set(xlabel="", title=title)
    ax.legend(frameon=False, fontsize="small", bbox_to_anchor=(1.01, 1), loc="upper left")
    return ax


def _label_y(ax, y: str) -> None:
    ax.set_ylabel(AXIS_LABELS.get(y, y.replace("_", " ")))
    if y == "rel_increase":
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))


def lines_vs_sparsity(
    df, y: str = "value", hue: str = "language", ax=None, title: str = "", roles: dict | None = None
):
    """One line per ``hue`` over sparsity; with ``roles`` (language -> role) held-out languages are dashed."""
    ax = ax or plt.subplots(figsize=(6, 3.6))[1]
    style = df["language"].map(roles) if roles else None
    sns.lineplot(data=df, x="sparsity", y=y, hue=hue, style=style, marker="o", ax=ax, errorbar=None)
    _label_y(ax, y)
    ax.set(title=title)
    ax.legend(frameon=False, ncols=2, fontsize="x-small", bbox_to_anchor=(1.01, 1), loc="upper left")
    return ax
