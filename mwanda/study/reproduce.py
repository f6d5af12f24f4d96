"""Shipping records and proving them: ``python -m mwanda.study.reproduce ship|check|status|grid``.

- ``ship``: put computed records (JSON, in a results folder) into the shipped set, or, with
  ``--replace``, make a complete fresh folder the shipped set in one rename (``make reproduce``).
- ``check``: recompute a few shipped records chosen at random and compare every number (the spot
  check of ``make figures``); the seed is printed so a failure can be rerun.
- ``status``: which notebooks of the last ``make figures`` computed records instead of reading
  shipped ones (new configs, or stale records whose key no longer matches the code).
- ``prune``: after a ``make figures`` of every notebook, remove the shipped records none of them
  read (stale ones a changed config left behind) and the texts no record names.
- ``grid``: the shipped configs of a profile as a grid file for ``mwanda sweep`` (a cluster).

``make figures`` sets ``MWANDA_RECORD_LOG`` per notebook; the runner appends each record's key and
where it came from (``experiments.run``), which is what ``status`` and ``ship --logs`` read.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
from pathlib import Path

import yaml

from mwanda import REPO_ROOT
from mwanda.core.config import ConfigError
from mwanda.io import swap_in_dir, umask
from mwanda.study import experiments, shipped
from mwanda.study.figcheck import ATOL, RTOL
from mwanda.study.records import RESULTS_DIR, read_record
from mwanda.study.results import config_of

# Folders of cached measurements beside the records that notebooks read back: 09's per-layer
# diagnostics, 08's cost sweep and CWL timings. They ship with the records.
MEASURED = ("diagnostics", "scaling")
LOG_SUFFIX = ".records"  # build/<profile>/<notebook>.records: one "<key>\t<source>" line per record


def read_logs(build_dir: Path) -> dict[str, list[tuple[str, str]]]:
    """{notebook: [(key, source), ...]} from the record logs of a ``make figures`` build folder."""
    logs = {}
    for path in sorted(Path(build_dir).glob(f"*{LOG_SUFFIX}")):
        lines = path.read_text(encoding="utf-8").split()
        logs[path.name.removesuffix(LOG_SUFFIX)] = list(zip(lines[::2], lines[1::2], strict=True))
    return logs


def status(build_dir: Path) -> list[str]:
    """Lines naming each notebook that computed records rather than reading shipped ones."""
    out = []
    for notebook, entries in read_logs(build_dir).items():
        computed = sorted({k for k, source in entries if source != "shipped"})
        if computed:
            out.append(
                f"{notebook}: {len(computed)} of {len({k for k, _ in entries})} records not shipped "
                f"(new configs, or stale: their key no longer matches the code); `make ship` ships them"
            )
    return out


def ship(keys: list[str], from_dir: Path, shipped_dir: Path | None = None) -> list[Path]:
    """Ship the records ``keys`` of ``from_dir`` (checked as they are read) and its ``MEASURED`` files."""
    shipped_dir = Path(shipped_dir or shipped.SHIPPED_DIR)
    paths = []
    for key in keys:
        rec = read_record(from_dir / f"{key}.json")
        if rec is not None:  # a record read from the shipped set is already there
            paths.append(shipped.write(rec, shipped_dir))
    for folder in MEASURED:
        for path in sorted((from_dir / folder).glob("*.*")):
            (shipped_dir / folder).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, shipped_dir / folder / path.name)
    return paths


def prune(build_dir: Path, notebooks: list[str], shipped_dir: Path | None = None) -> list[str]:
    """Remove the shipped records no notebook of ``build_dir`` read or computed, and the texts no
    remaining record names; return the removed keys. Refused unless every one of ``notebooks``
    left its record log there: a partial build would not know what the others read."""
    shipped_dir = Path(shipped_dir or shipped.SHIPPED_DIR)
    logs = read_logs(build_dir)
    missing = sorted(set(notebooks) - set(logs))
    if missing:
        raise ConfigError(
            f"{build_dir} has no record log of {', '.join(missing)}: run `make figures` (every "
            "notebook) first, then prune."
        )
    read = {key for entries in logs.values() for key, _ in entries}
    keys = sorted(p.name.removesuffix(shipped.SUFFIX) for p in shipped_dir.glob(f"*{shipped.SUFFIX}"))
    removed = [key for key in keys if key not in read]
    for key in removed:
        shipped.shipped_path(key, shipped_dir).unlink()
    named = {shipped.text_of(p) for p in shipped_dir.glob(f"*{shipped.SUFFIX}")}
    for text in (shipped_dir / shipped.TEXTS).glob(f"*{shipped.SUFFIX}"):
        if text.name.removesuffix(shipped.SUFFIX) not in named:
            text.unlink()
    return removed


def replace_shipped(from_dir: Path, shipped_dir: Path | None = None) -> int:
    """Make every record of ``from_dir`` the shipped set: built aside, then renamed into place,
    so the old set stays whole until the new one is complete."""
    shipped_dir = Path(shipped_dir or shipped.SHIPPED_DIR)
    keys = sorted(p.stem for p in from_dir.glob("*.json"))
    if not keys:
        raise ConfigError(f"{from_dir} holds no records to ship; compute them first (`make reproduce`).")
    staging = Path(tempfile.mkdtemp(dir=shipped_dir.parent, prefix=f".{shipped_dir.name}-"))
    try:
        ship(keys, from_dir, staging)
        staging.chmod(0o777 & ~umask())  # mkdtemp makes it 0700
        swap_in_dir(staging, shipped_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return len(keys)


def shipped_records(profile: str, shipped_dir: Path | None = None) -> list[dict]:
    """The shipped records of ``profile``, in key order."""
    shipped_dir = Path(shipped_dir or shipped.SHIPPED_DIR)
    found = (shipped.read(p) for p in sorted(shipped_dir.glob(f"*{shipped.SUFFIX}")))
    return [r for r in found if r["config"].get("profile") == profile]


def differences(old: dict, new: dict) -> list[str]:
    """Every number of ``old`` that ``new`` does not reproduce within figcheck's tolerance."""
    out = []
    pairs = [
        (f"{o['language']} {o['metric']}", o["value"], n["value"])
        for o, n in zip(old["metrics"], new["metrics"], strict=False)
    ]
    if [(r["language"], r["metric"]) for r in old["metrics"]] != [
        (r["language"], r["metric"]) for r in new["metrics"]
    ]:
        out.append("its metric rows differ (languages or metrics)")
    for metric, langs in old.get("paragraphs", {}).items():
        for lang, parts in langs.items():
            again = new.get("paragraphs", {}).get(metric, {}).get(lang, {"nll": [], "bytes": []})
            if parts["bytes"] != again["bytes"]:
                out.append(f"{lang} {metric}: the paragraphs differ (byte counts)")
            nlls = zip(parts["nll"], again["nll"], strict=False)  # a length change is caught above
            pairs += [(f"{lang} {metric} paragraph {i}", *v) for i, v in enumerate(nlls)]
    # "not <=": a NaN or an infinity is a difference, never the same number
    out += [f"{what}: {a!r} -> {b!r}" for what, a, b in pairs if not abs(b - a) <= ATOL + RTOL * abs(a)]
    return out


def spot_check(count: int, seed: int, profile: str = "embedded", shipped_dir: Path | None = None) -> int:
    """Recompute ``count`` shipped records of ``profile`` chosen with ``seed``; 0 if every number
    agrees, else 1 after printing the record and the numbers that differ."""
    shipped_dir = Path(shipped_dir or shipped.SHIPPED_DIR)
    found = shipped_records(profile, shipped_dir)
    records = [r for r in found if config_of(r).key() == r["key"]]  # stale ones: `make figures` says
    chosen = random.Random(seed).sample(records, min(count, len(records)))
    stale = f"; {len(found) - len(records)} stale, not checked" if len(found) > len(records) else ""
    print(
        f"spot check: {len(chosen)} of {len(records)} shipped {profile} records, seed {seed} "
        f"(CHECK_SEED={seed} repeats it){stale}"
    )
    with tempfile.TemporaryDirectory(prefix="mwanda-check-") as tmp:
        for old in chosen:
            new = experiments.run(config_of(old), results_dir=tmp, progress=False)
            bad = differences(old, new)
            name = f"{old['key']} ({old['config']['method']}, sparsity {old['config']['sparsity']:g})"
            if bad:
                print(f"spot check FAILED: {name}, {len(bad)} numbers differ:", *bad[:10], sep="\n  ")
                return 1
            masks = [(r.get("pruning") or {}).get("mask_sha256") for r in (old, new)]
            mask = "" if masks[0] is None else ", the same mask" if masks[0] == masks[1] else ", another mask"
            print(f"  {name}: every number the same within {RTOL:g}{mask} ({new['seconds']:.0f} s)")
    return 0


def grid(profile: str, shipped_dir: Path | None = None) -> dict:
    """A grid file (``sweep.expand``'s ``configs`` form) of the shipped configs of ``profile``."""
    shipped_dir = Path(shipped_dir or shipped.SHIPPED_DIR)
    configs = []
    for rec in shipped_records(profile, shipped_dir):
        config = {k: v for k, v in rec["config"].items() if k != "profile"}
        if experiments.make_config(profile, **config).key() != rec["key"]:
            continue  # stale: its key no longer matches the code; the notebooks recompute it
        configs.append(config)
    return {"profile": profile, "configs": configs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mwanda.study.reproduce", description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("ship", help="ship records: those a build's logs name, or a whole folder (--replace)")
    p.add_argument("--logs", type=Path, help="a build folder: ship the records its notebooks computed")
    p.add_argument("--replace", type=Path, help="a results folder whose records become the shipped set")
    p = sub.add_parser("check", help="recompute shipped records at random and compare every number")
    p.add_argument("--count", type=int, default=3, help="how many records (default: 3; 0: none)")
    p.add_argument("--seed", type=int, default=None, help="which ones (default: a new random seed, printed)")
    p.add_argument("--profile", default="embedded", help="whose records (default: embedded)")
    p = sub.add_parser("status", help="name the notebooks of a build that computed unshipped records")
    p.add_argument("build", type=Path)
    p = sub.add_parser("prune", help="remove the shipped records no notebook of a whole build read")
    p.add_argument("build", type=Path)
    p = sub.add_parser("grid", help="the shipped configs of a profile as a grid file for `mwanda sweep`")
    p.add_argument("--profile", default="embedded", help="whose configs (default: embedded)")
    args = parser.parse_args(argv)
    if args.command == "ship":
        if args.replace:
            print(f"{replace_shipped(args.replace)} records are now the shipped set ({shipped.SHIPPED_DIR})")
            return 0
        keys = sorted({k for e in read_logs(args.logs).values() for k, src in e if src != "shipped"})
        print(f"shipped {len(ship(keys, RESULTS_DIR))} records into {shipped.SHIPPED_DIR}")
        return 0
    if args.command == "check":
        if args.count <= 0:
            return 0
        seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(3), "big")
        return spot_check(args.count, seed, args.profile)
    if args.command == "prune":
        notebooks = [p.stem for p in sorted((REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))]
        removed = prune(args.build, notebooks)
        print(
            f"removed {len(removed)} shipped records no notebook read" + "".join(f"\n  {k}" for k in removed)
        )
        return 0
    if args.command == "status":
        lines = status(args.build)
        print(*(lines or ["every notebook read shipped records only"]), sep="\n")
        return 0
    yaml.safe_dump(grid(args.profile), sys.stdout, sort_keys=False, allow_unicode=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
