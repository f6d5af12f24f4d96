"""Every notebook executes headless under the smoke profile (as `make figures PROFILE=smoke`)."""

from __future__ import annotations

import json
from pathlib import Path

import papermill
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
SMOKE = yaml.safe_load((ROOT / "notebooks" / "params" / "smoke.yaml").read_text())


def test_notebooks_are_numbered_00_to_06():
    assert [p.name[:2] for p in NOTEBOOKS] == [f"{i:02d}" for i in range(7)]


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory):
    """One results cache for all notebooks, as `make figures` shares results/."""
    return tmp_path_factory.mktemp("results")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_under_smoke(path, tmp_path, results_dir):
    figures = tmp_path / "figures"
    params = SMOKE | {"results_dir": str(results_dir), "figures_dir": str(figures)}
    papermill.execute_notebook(
        str(path), str(tmp_path / path.name), parameters=params, cwd=str(path.parent), progress_bar=False
    )
    saved = sorted(p.name for p in (figures / path.stem).iterdir())
    assert saved and all(any(s == f"{Path(p).stem}.pdf" for s in saved) for p in saved if p.endswith(".png"))
    executed = json.loads((tmp_path / path.name).read_text())
    assert any(c.get("outputs") for c in executed["cells"] if c["cell_type"] == "code")
