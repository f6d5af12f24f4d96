"""Compare regenerated figures with the committed ones by their numbers, not their pixels.

Every figure is saved with the tidy numbers it draws (``<name>.csv`` beside ``<name>.png`` and
``.pdf``, see ``plotting.savefig``). Regenerated on another machine of the same kind, the numbers
agree to float rounding while the PNG and PDF bytes may not (anti-aliasing of a line that moved
by 1e-7). So ``make figures`` writes into ``build/<profile>/figures`` and then runs

    python -m mwanda.study.figcheck build/embedded/figures/04_mwanda_vs_wanda \
        figures/04_mwanda_vs_wanda --update

which prints, per figure, "same within 1e-06" (the committed files are kept, git stays clean) or
the largest difference (the regenerated files replace the committed ones, each through a
temporary file and a rename). Same numbers drawn differently (a new colour, a new label) are
"redrawn" and replace the committed files too: the PNGs are compared pixel by pixel, and more
than PIXEL_SHARE of changed pixels is more than anti-aliasing noise. Figures that are new are
copied; committed figures the notebook no longer draws are reported, never deleted.

Tolerance: |new - old| <= ATOL + RTOL * |old| per number (both 1e-6); text columns and the
shape must match exactly; at most PIXEL_SHARE (0.1%) of the PNG's pixels may differ. Wall times
(a column named ``*_s`` or ``*_s_*``, e.g. notebook 08's ``prune_s``) are measurements of the
machine, not results: they must agree within a factor TIME_FACTOR (2) or within TIME_ATOL (0.1 s,
below which a timing is mostly scheduler noise), and a figure that draws
them is not compared pixel by pixel (its points move with every run).
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

RTOL = 1e-6  # float rounding across machines of one kind is ~1e-7 relative on bits per byte
ATOL = 1e-6  # differences of near-equal numbers (relative increases ~1e-2) carry ~1e-7 absolute noise
# Measured: regenerated on another machine of the same kind, at most 128 pixels of a figure
# differed (float noise moving anti-aliased edges); a changed colour or label changes thousands.
PIXEL_SHARE = 1e-3
# Wall times of one run on a shared 2-core machine vary by tens of percent; a factor 2 is a change.
TIME_FACTOR = 2.0
TIME_ATOL = 0.1  # seconds: 08's CWL timing at L = 15 measured 0.009, 0.034 and 0.015 s in three runs
CHANGED = ("new", "differs", "redrawn")  # the verdicts under which --update copies the figure
SUFFIXES = (".csv", ".png", ".pdf")


@dataclass(frozen=True)
class Check:
    """The verdict on one figure: ``same`` (within tolerance), ``differs`` (numbers), ``redrawn``
    (same numbers, other pixels), ``new`` or ``gone``."""

    name: str
    verdict: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.name}: {self.verdict}{' (' + self.detail + ')' if self.detail else ''}"


def is_time(column: str) -> bool:
    """A wall-time column (seconds): ``prune_s``, ``cwl_s_all_blocks``."""
    return column.endswith("_s") or "_s_" in column


def _excess(u: float, v: float, column: str, rtol: float, atol: float, loose_times: bool = True) -> float:
    """How many times the allowed difference ``u`` is from ``v`` (> 1: a change)."""
    if loose_times and is_time(column) and u > 0 and v > 0:
        return 0.0 if abs(u - v) <= TIME_ATOL else abs(math.log(u / v)) / math.log(TIME_FACTOR)
    return abs(u - v) / (atol + rtol * abs(v)) if math.isfinite(u - v) else math.inf


def compare_tables(
    new: pd.DataFrame, old: pd.DataFrame, rtol: float = RTOL, atol: float = ATOL, loose_times: bool = True
) -> str | None:
    """None if ``new`` equals ``old`` within tolerance (wall times: within TIME_FACTOR or
    TIME_ATOL, unless not ``loose_times``), else what differs, in a few words."""
    if list(new.columns) != list(old.columns):
        return f"columns {list(old.columns)} -> {list(new.columns)}"
    if len(new) != len(old):
        return f"{len(old)} rows -> {len(new)}"
    worst, where = 0.0, ""
    for col in new.columns:
        a, b = new[col], old[col]
        numeric = pd.api.types.is_numeric_dtype(a) and pd.api.types.is_numeric_dtype(b)
        if not numeric:
            if not a.astype(str).equals(b.astype(str)):
                row = int((a.astype(str) != b.astype(str)).to_numpy().argmax())
                return f"column {col!r}, row {row}: {b.iloc[row]!r} -> {a.iloc[row]!r}"
            continue
        x, y = a.to_numpy(dtype=float), b.to_numpy(dtype=float)
        for i, (u, v) in enumerate(zip(x, y, strict=True)):
            if math.isnan(u) and math.isnan(v) or u == v:
                continue
            excess = _excess(u, v, col, rtol, atol, loose_times)
            if excess > 1 and excess > worst:
                worst, where = excess, f"column {col!r}, row {i}: {v!r} -> {u!r}"
    return where or None


def changed_pixels(new_png: Path, old_png: Path) -> float | None:
    """Share of pixels that differ between two PNGs (1.0 if their sizes differ); None if the
    committed PNG is missing."""
    if not old_png.exists():
        return None
    a, b = np.asarray(Image.open(new_png).convert("RGBA")), np.asarray(Image.open(old_png).convert("RGBA"))
    if a.shape != b.shape:
        return 1.0
    return float((a != b).any(axis=-1).mean())


def check_figures(new_dir: Path, old_dir: Path, rtol: float = RTOL, atol: float = ATOL) -> list[Check]:
    """One ``Check`` per figure in either folder, by the CSV of its numbers."""
    new_names = {p.stem for p in new_dir.glob("*.csv")}
    old_names = {p.stem for p in old_dir.glob("*.csv")} if old_dir.is_dir() else set()
    missing = sorted(p.stem for p in new_dir.glob("*.png") if p.stem not in new_names)
    if missing:
        raise FileNotFoundError(
            f"{new_dir}: figures without their numbers (no .csv): {missing}; save them with plotting.savefig"
        )
    checks = []
    for name in sorted(new_names | old_names):
        if name not in new_names:
            checks.append(
                Check(
                    name,
                    "gone",
                    f"committed, not drawn by this run; delete {old_dir / name}.* by hand if meant",
                )
            )
        elif name not in old_names:
            checks.append(Check(name, "new"))
        else:
            new_table, old_table = (pd.read_csv(d / f"{name}.csv") for d in (new_dir, old_dir))
            diff = compare_tables(new_table, old_table, rtol, atol)
            timed = [c for c in new_table.columns if is_time(str(c))]
            # remeasured wall times move the lines: pixels say nothing then; read back, they do
            remeasured = bool(timed) and compare_tables(new_table, old_table, rtol, atol, False) is not None
            pixels = (
                None
                if diff or remeasured
                else changed_pixels(new_dir / f"{name}.png", old_dir / f"{name}.png")
            )
            if diff:
                checks.append(Check(name, "differs", diff))
            elif pixels is not None and pixels > PIXEL_SHARE:
                checks.append(Check(name, "redrawn", f"same numbers, {pixels:.1%} of the pixels changed"))
            else:
                within = f"within a factor {TIME_FACTOR:g} or {TIME_ATOL:g} s"
                times = f"; wall times {timed} {within}" if timed else ""
                checks.append(Check(name, "same", f"within {rtol:g}{times}"))
    return checks


def _replace(src: Path, dst: Path) -> None:
    """Copy ``src`` over ``dst`` through a temporary file in dst's folder and a rename, so an
    interrupted copy never leaves a half-written committed figure."""
    tmp = dst.with_name(f".{dst.name}.tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def update(new_dir: Path, old_dir: Path, checks: list[Check]) -> None:
    """Copy the figures that are new or differ into ``old_dir``; the others are left untouched."""
    old_dir.mkdir(parents=True, exist_ok=True)
    for c in checks:
        if c.verdict in CHANGED:
            for suffix in SUFFIXES:  # a table (plotting.savetable) has only its CSV
                if (new_dir / f"{c.name}{suffix}").exists():
                    _replace(new_dir / f"{c.name}{suffix}", old_dir / f"{c.name}{suffix}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("new", type=Path, help="the regenerated figures of one notebook")
    parser.add_argument("committed", type=Path, help="the committed figures of that notebook")
    parser.add_argument("--update", action="store_true", help="copy new and changed figures into `committed`")
    args = parser.parse_args(argv)
    if not args.new.is_dir():
        parser.error(f"{args.new} is not a folder of regenerated figures; run the notebook first")
    if args.new.resolve() == args.committed.resolve():
        parser.error("the regenerated and the committed folder are the same; regenerate into build/")
    checks = check_figures(args.new, args.committed)
    if args.update:
        update(args.new, args.committed, checks)
    same = [c for c in checks if c.verdict == "same"]
    print(f"{args.committed}: {len(same)} of {len(checks)} figures the same within {RTOL:g} (numbers, CSV)")
    for c in checks:
        if c.verdict != "same":
            print(f"  {c}{'; updated' if args.update and c.verdict in CHANGED else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
