"""Every case of the bad-input table (tests/bad_inputs.py): refused with one line naming the fix,
or handled correctly; inputs byte-identical afterwards."""

from __future__ import annotations

import shutil

import pytest
from bad_inputs import CASES, Workspace, make_workspace, run_case


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return make_workspace(tmp_path_factory.mktemp("bad-inputs") / "ws")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case, base, tmp_path):
    reason = case.skip_if()
    if reason:
        pytest.skip(reason)
    ws = Workspace(shutil.copytree(base.root, tmp_path / "ws", symlinks=True))
    outcome = run_case(case, ws)
    assert outcome.verdict == "as expected", f"{case.id}: {outcome.verdict}\n{outcome.stderr}"
    assert outcome.inputs_intact
