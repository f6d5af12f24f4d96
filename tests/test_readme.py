"""Every shell command in the README runs as typed (at smoke size), so the README cannot rot.

``make`` lines are dry-run (``make -n``: the target and its variables exist); ``mwanda`` lines run
in-process with their outputs moved under a temporary folder and their calibration shrunk to smoke
size; the packaged Gemma model is a tiny GGUF served by a stand-in package, so no download.
"""

from __future__ import annotations

import hashlib
import re
import shlex
import subprocess
import sys
import types
from pathlib import Path

import pytest

from mwanda.cli import main
from mwanda.core import gguf as gguf_mod

ROOT = Path(__file__).resolve().parent.parent
SMOKE = {"--nsamples": "8", "--seqlen": "64"}  # the calibration a README line asks for, shrunk


def readme_commands() -> list[str]:
    """The README's bash lines, continuations joined, comments dropped."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" # ", 1)[0].strip()
            if line and not line.startswith("#"):
                commands.append(" ".join(line.split()))
    return commands


def test_the_readme_has_the_commands_a_newcomer_needs():
    words = [c.split()[:3] for c in readme_commands()]
    assert ["make", "figures"] in words and ["make", "test"] in words
    assert [".venv/bin/mwanda", "calib", "--out"] in words and [
        ".venv/bin/mwanda",
        "prune",
        "--model",
    ] in words


def rewritten(command: str, tmp: Path) -> list[str]:
    """The mwanda arguments of ``command`` with build/ paths under ``tmp`` and smoke-sized calibration."""
    args = shlex.split(command)[1:]
    out = []
    for i, arg in enumerate(args):
        if i and args[i - 1] in SMOKE:
            arg = SMOKE[args[i - 1]]
        out.append(str(tmp / arg) if arg.startswith("build/") else arg)
    return out


@pytest.fixture
def tiny_gemma(tmp_path, monkeypatch):
    """`gemma-3-270m` served by a stand-in package whose GGUF is a tiny random Llama."""
    from test_gguf import write_tiny_gguf

    source = write_tiny_gguf(tmp_path / "tiny.gguf")
    sha = hashlib.sha256(source.read_bytes()).hexdigest()
    package = types.ModuleType("tiny_gemma_package")
    package.MODEL_NAME, package.EXPECTED_SHA256 = "tiny.gguf", sha
    package.assemble = lambda path, overwrite=False: Path(path).write_bytes(source.read_bytes())
    monkeypatch.setitem(sys.modules, "tiny_gemma_package", package)
    monkeypatch.setitem(
        gguf_mod.PACKAGED, "gemma-3-270m", gguf_mod.Packaged("tiny_gemma_package", "make gemma", sha)
    )
    monkeypatch.setenv("MWANDA_CACHE", str(tmp_path / "cache"))


@pytest.mark.parametrize("command", readme_commands())
def test_readme_command_runs_as_typed(command, tmp_path, tiny_gemma, capsys):
    if command.startswith("make "):
        dry = subprocess.run(["make", "-n", "-C", str(ROOT), *shlex.split(command)[1:]], capture_output=True)
        assert dry.returncode == 0, dry.stderr.decode()
        return
    assert command.startswith(".venv/bin/mwanda "), f"the README runs {command!r}: test it here"
    (tmp_path / "build").mkdir(exist_ok=True)
    if "--calib-text" in command:  # the file the README's `mwanda calib` line writes
        assert main(["calib", "--out", str(tmp_path / "build" / "calib.jsonl"), "--langs", "en", "de"]) == 0
    args = rewritten(command, tmp_path)
    if args[0] == "prune":
        args.append("--no-progress")
    assert main(args) == 0
    assert "error" not in capsys.readouterr().err
