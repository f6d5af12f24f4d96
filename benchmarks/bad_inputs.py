"""Run the whole bad-input table (tests/bad_inputs.py) and print it with the counts.

    .venv/bin/python benchmarks/bad_inputs.py [--verbose]

Every row says what the user sees (exit code, the error line) and whether the case behaved as
expected: refused with one line naming the fix, or handled correctly, inputs byte-identical.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from bad_inputs import CASES, Workspace, make_workspace, run_case  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verbose", action="store_true", help="print each case's whole stderr")
    args = parser.parse_args()
    tally: Counter = Counter()
    with tempfile.TemporaryDirectory() as tmp:
        base = make_workspace(Path(tmp) / "base")
        print(f"| case | group | expected | exit | verdict | what the user sees |\n|{'---|' * 6}")
        for i, case in enumerate(CASES):
            reason = case.skip_if()
            if reason:
                tally["skipped"] += 1
                print(f"| {case.id} | {case.group} | {case.expect} | - | skipped: {reason} | |")
                continue
            ws = Workspace(shutil.copytree(base.root, Path(tmp) / f"case{i}", symlinks=True))
            out = run_case(case, ws)
            tally[case.expect if out.verdict == "as expected" else "wrong"] += 1
            seen = out.stderr if args.verbose else (out.stderr.splitlines() or [""])[-1][:120]
            print(f"| {case.id} | {case.group} | {case.expect} | {out.code} | {out.verdict} | {seen} |")
    print(
        f"\n{len(CASES)} cases: {tally['refused']} refused cleanly, {tally['ok']} handled correctly, "
        f"{tally['wrong']} wrong, {tally['skipped']} skipped"
    )
    return 1 if tally["wrong"] else 0


if __name__ == "__main__":
    sys.exit(main())
