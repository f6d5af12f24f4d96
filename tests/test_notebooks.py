"""Every notebook executes headless under the smoke profile (as `make figures PROFILE=smoke`)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import papermill
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
SMOKE = yaml.safe_load((ROOT / "notebooks" / "params" / "smoke.yaml").read_text())


def test_notebooks_are_numbered_00_to_10():
    assert [p.name[:2] for p in NOTEBOOKS] == [f"{i:02d}" for i in range(11)]


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory):
    """One results cache for all notebooks, as `make figures` shares results/."""
    return tmp_path_factory.mktemp("results")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_under_smoke(path, tmp_path, results_dir, monkeypatch):
    """Executed as `make figures` does (TQDM_DISABLE=1): figures saved, and the executed notebook
    holds results only: no progress bars or library warnings (stderr), no echoed paths."""
    monkeypatch.setenv("TQDM_DISABLE", "1")  # the kernel inherits it, as under the Makefile
    figures = tmp_path / "figures"
    params = SMOKE | {"results_dir": str(results_dir), "figures_dir": str(figures)}
    papermill.execute_notebook(
        str(path), str(tmp_path / path.name), parameters=params, cwd=str(path.parent), progress_bar=False
    )
    saved = sorted(p.name for p in (figures / path.stem).iterdir())
    pngs = [Path(p).stem for p in saved if p.endswith(".png")]
    assert pngs and all(f"{stem}.pdf" in saved and f"{stem}.csv" in saved for stem in pngs)  # numbers beside
    executed = json.loads((tmp_path / path.name).read_text())
    outputs = [o for c in executed["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    assert outputs
    stderr = ["".join(o["text"])[:200] for o in outputs if o.get("name") == "stderr"]
    assert not stderr, stderr
    echoed = ["".join(o["data"]["text/plain"]) for o in outputs if o["output_type"] == "execute_result"]
    assert not [text for text in echoed if "PosixPath(" in text]
    widgets = [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert not widgets  # tqdm.auto's notebook bars
    if path.stem == "09_real_model":  # it reads the dense model's task accuracy by its metric's name
        printed = "".join("".join(o.get("text", "")) for o in outputs)
        assert "proxy continuation: mean accuracy" in printed


def test_notebooks_run_by_hand_never_write_the_committed_figures():
    """Notebooks save into build/<profile>/figures; only `make figures` with the default profile
    then updates figures/, through figcheck (by numbers, not bytes)."""
    from mwanda.study import plotting

    assert plotting.figures_dir("embedded") == ROOT / "build" / "embedded" / "figures"
    assert plotting.figures_dir("/somewhere/my_mirror.yaml") == ROOT / "build" / "my_mirror" / "figures"
    for profile, syncs in (("embedded", True), ("smoke", False), ("my.yaml", False)):
        plan = subprocess.run(
            ["make", "-n", "-C", str(ROOT), "00_embedded_model", f"PROFILE={profile}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        command = next(line for line in plan.splitlines() if "mwanda.study.execute" in line)
        assert "TQDM_DISABLE=1" in command and "figures_dir" not in command, command
        build = ROOT / "build" / Path(profile).stem
        nb = "00_embedded_model"
        sync = f"-m mwanda.study.figcheck {build}/figures/{nb} {ROOT}/figures/{nb} --update"
        assert (sync in plan) == syncs, plan


def test_make_figures_turns_the_walkthrough_sliders_off():
    """Headless there is no frontend for ipywidgets: only the walkthrough gets sliders=False."""
    for notebook, off in (("03_walk_through_one_layer", True), ("02_language_statistics", False)):
        make = ["make", "-n", "-C", str(ROOT), notebook]
        plan = subprocess.run(make, capture_output=True, text=True, check=True).stdout
        command = next(line for line in plan.splitlines() if "mwanda.study.execute" in line)
        assert ("-p sliders False" in command) == off, command


def test_make_figures_runs_the_real_models_profile_beside_the_other_figures():
    """With the default profile 09 runs Gemma (its records are shipped) and saves beside the other
    notebooks' figures; under another profile it runs that profile, like every notebook."""
    for profile, gemma in (("embedded", True), ("smoke", False)):
        make = ["make", "-n", "--no-print-directory", "-C", str(ROOT), "09_real_model", f"PROFILE={profile}"]
        plan = subprocess.run(make, capture_output=True, text=True, check=True).stdout
        command = next(line for line in plan.splitlines() if "mwanda.study.execute" in line)
        assert ("-p profile gemma -p figures_dir" in command) == gemma, command
        assert "skipped" not in plan


def test_make_lab_starts_jupyterlab_from_the_project_environment():
    plan = subprocess.run(["make", "-n", "-C", str(ROOT), "lab"], capture_output=True, text=True, check=True)
    command = next(line for line in plan.stdout.splitlines() if "jupyter lab" in line)
    assert f"{ROOT}/.venv/bin/jupyter lab" in command and "cd " + str(ROOT / "notebooks") in command
    assert ("--allow-root" in command) == (os.getuid() == 0)
    assert (ROOT / ".venv" / "bin" / "jupyter-lab").exists()  # jupyterlab is in the study extra


def _tiny_notebook(path: Path, body: str) -> Path:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell("x = 1")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(body)]
    nbformat.write(nb, path)
    return path


def test_execute_is_papermills_command_line_without_the_iri_parser(tmp_path):
    """`make figures` runs notebooks through mwanda.study.execute: papermill's options (-p, exit
    status) unchanged, and the optional URI-syntax parser (1 s of imports) never loaded."""
    import subprocess
    import sys

    nb, out = _tiny_notebook(tmp_path / "ok.ipynb", "print(x * 2)"), tmp_path / "ok.out.ipynb"
    run = [sys.executable, "-m", "mwanda.study.execute", "--no-progress-bar", str(nb), str(out)]
    done = subprocess.run([*run, "-p", "x", "21"], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    printed = json.loads(out.read_text())["cells"][-1]["outputs"][0]["text"]
    assert "".join(printed).startswith("42")  # -p parsed as papermill does (an int)
    probe = "import sys; import mwanda.study.execute as e; e.main(['--help'])"
    probe += "; print('rfc3987_syntax' in sys.modules and sys.modules['rfc3987_syntax'] is not None)"
    shown = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert shown.stdout.strip().endswith("False") and "--parameters" in shown.stdout
    bad = _tiny_notebook(tmp_path / "bad.ipynb", "raise ValueError('boom')")
    failed = subprocess.run(
        [*run[:-2], str(bad), str(tmp_path / "bad.out.ipynb")], capture_output=True, text=True
    )
    assert failed.returncode != 0 and "boom" in failed.stderr + failed.stdout
    # one parameters file for every notebook: the keys this notebook lacks are dropped, quietly,
    # and the kernel runs over ipc sockets (no "TCP without encryption" warning)
    shared = tmp_path / "params.yaml"
    shared.write_text("x: 5\nsparsities: [0.5]\n")
    quiet = subprocess.run(
        [*run, "-f", str(shared), "--log-output"], capture_output=True, text=True, cwd=tmp_path
    )
    assert quiet.returncode == 0, quiet.stderr
    assert "".join(json.loads(out.read_text())["cells"][-1]["outputs"][0]["text"]).startswith("10")
    noise = quiet.stderr + quiet.stdout
    assert "unknown parameter" not in noise and "without encryption" not in noise
    assert shared.read_text() == "x: 5\nsparsities: [0.5]\n"  # the user's file untouched
    # two kernels at once (make -j): each on its own sockets
    both = [
        subprocess.Popen([*run[:-1], str(tmp_path / f"par{i}.ipynb"), "-p", "x", str(i)], cwd=tmp_path)
        for i in (1, 2)
    ]
    assert [p.wait() for p in both] == [0, 0]
