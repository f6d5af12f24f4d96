"""One figure style and one way to save figures (PNG + PDF under figures/<notebook-stem>/).

Saved files carry no timestamps or software versions, so regenerating an unchanged figure
rewrites identical bytes and git shows only real changes.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import seaborn as sns

REPO_ROOT = Path(__file__).resolve().parent.parent
FIGURES_DIR = REPO_ROOT / "figures"
# One colour per method, fixed across every figure of the repository.
METHOD_COLORS = {
    "dense": "#4d4d4d",
    "magnitude": "#bdbdbd",
    "wanda": "#1f77b4",
    "ria": "#9467bd",
    "mwanda": "#d62728",
    "mwanda+ria": "#ff7f0e",
}


def set_style() -> None:
    """The repository's figure style: seaborn whitegrid, compact fonts, 150 dpi."""
    sns.set_theme(style="whitegrid", context="paper", font_scale=1.1)
    plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 150, "savefig.bbox": "tight", "pdf.fonttype": 42})


def figures_dir(profile: str) -> Path:
    """Where a profile's figures go: figures/ for the embedded default (committed), and
    build/<profile>/figures for the others, so smoke or paper runs never overwrite them."""
    return FIGURES_DIR if profile == "embedded" else REPO_ROOT / "build" / profile / "figures"


def savefig(fig: plt.Figure, name: str, notebook: str, figures_dir: str | Path = FIGURES_DIR) -> list[Path]:
    """Save ``fig`` as figures/<notebook>/<name>.png and .pdf (byte-stable); returns the paths."""
    out = Path(figures_dir) / Path(notebook).stem
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.png", out / f"{name}.pdf"]
    fig.savefig(paths[0], metadata={"Software": None})
    fig.savefig(paths[1], metadata={"Creator": None, "Producer": None, "CreationDate": None})
    return paths
