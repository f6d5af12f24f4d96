"""Repository guards: no large files, notebooks committed without outputs, pins intact."""

from __future__ import annotations

import json
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LIMIT = 25 * 1024 * 1024


def tracked_files() -> list[Path]:
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "ls-files", "-z"], capture_output=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [ROOT / p for p in out.decode().split("\0") if p]


def test_no_tracked_file_over_25_mb():
    big = [str(p.relative_to(ROOT)) for p in tracked_files() if p.is_file() and p.stat().st_size > LIMIT]
    assert big == []


def committed_form(path: Path) -> bytes:
    """What ``git add`` would store for ``path``: the file through the repository's clean filter
    (nbstripout, set up by `make setup`; ``.gitattributes`` names it)."""
    clean = subprocess.run(
        ["git", "-C", str(ROOT), "config", "filter.nbstripout.clean"], capture_output=True, text=True
    ).stdout.strip()
    if not clean:
        pytest.fail("the nbstripout git filter is not set up: run `make setup` (or `make git-filters`)")
    return subprocess.run(
        clean, shell=True, input=path.read_bytes(), capture_output=True, check=True, cwd=ROOT
    ).stdout


def test_notebooks_as_committed_have_no_outputs_and_a_parameters_cell():
    for nb_path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = json.loads(committed_form(nb_path))
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        assert not any(c.get("outputs") or c.get("execution_count") for c in code), (
            f"{nb_path.name} has outputs"
        )
        assert any("parameters" in c.get("metadata", {}).get("tags", []) for c in code), nb_path.name


def test_a_notebook_run_in_jupyterlab_commits_as_it_was(tmp_path):
    """Outputs and execution counts (what JupyterLab's autosave writes) never reach git: the
    clean filter gives back the committed bytes, so `git status` stays clean, whatever ran."""
    path = ROOT / "notebooks" / "03_walk_through_one_layer.ipynb"
    assert (
        subprocess.run(
            ["git", "-C", str(ROOT), "check-attr", "filter", "--", str(path.relative_to(ROOT))],
            capture_output=True,
            text=True,
        )
        .stdout.strip()
        .endswith("filter: nbstripout")
    )
    nb = json.loads(path.read_text())
    for i, cell in enumerate(c for c in nb["cells"] if c["cell_type"] == "code"):
        cell["execution_count"] = i + 1
        cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["masks differ on 7.35%\n"]}]
    ran = tmp_path / path.name
    ran.write_text(json.dumps(nb, indent=1) + "\n")
    assert committed_form(ran) == path.read_bytes()


def test_every_install_puts_the_locks_torch_first_and_the_rest_under_the_lock():
    """Each install the repository runs or tells a user to run (the Makefile's recipes,
    environment.yml) installs torch first at exactly the lock's version (another build pulls
    gigabytes of CUDA packages), then everything else with the lock as constraints; the lock's
    version is read from constraints.txt, so a bump there that misses an install fails here."""
    import shlex

    import yaml
    from packaging.requirements import Requirement

    pins = dict(ln.split("==") for ln in (ROOT / "constraints.txt").read_text().splitlines() if "==" in ln)
    locked = pins["torch"].strip()

    def torch_first_then_locked(installs: list[list[str]]) -> None:
        first = Requirement(next(a for a in installs[0] if not a.startswith("-")))
        assert first.name == "torch" and str(first.specifier) == f"=={locked}", installs[0]
        for args in installs[1:]:
            assert "-c" in args and args[args.index("-c") + 1].endswith("constraints.txt"), args

    recipes = [ln.strip() for ln in (ROOT / "Makefile").read_text().splitlines() if ln.startswith("\t")]
    make = [shlex.split(r.split("pip install", 1)[1]) for r in recipes if "pip install" in r]
    torch_first_then_locked([a for a in make if "--upgrade" not in a])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    torch_first_then_locked([shlex.split(pip[0]), [a for line in pip[1:] for a in shlex.split(line)]])
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    torch_req = next(Requirement(d) for d in project["dependencies"] if d.startswith("torch"))
    assert torch_req.specifier.contains(locked)  # the package's own range admits the lock


def test_the_environment_is_the_lock():
    """Every package the lock pins and this environment has is installed at the pinned version
    (the numbers were measured with these), torch included."""
    import importlib.metadata as md

    pins = [ln.split("==") for ln in (ROOT / "constraints.txt").read_text().splitlines() if "==" in ln]
    checked = 0
    for name, version in pins:
        try:
            installed = md.version(name.strip())
        except md.PackageNotFoundError:
            continue  # an extra this environment did not install (gemma)
        assert installed.split("+")[0] == version.strip(), (name, installed, version)
        checked += 1
    assert checked > 50 and md.version("torch").split("+")[0] == "2.13.0"


def test_the_core_needs_no_study_package():
    """torch, transformers, accelerate, pycountry: the core's own imports need nothing else."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {d.split(">")[0].split("=")[0].split("<")[0] for d in project["dependencies"]}
    assert names == {"torch", "transformers", "accelerate", "pycountry"}
    study = " ".join(project["optional-dependencies"]["study"] + project["optional-dependencies"]["eval"])
    for pkg in ("lm-eval", "papermill", "jupyter", "seaborn", "submitit", "pandas", "datasets"):
        assert pkg in study
