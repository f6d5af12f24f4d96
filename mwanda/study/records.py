"""Records: one JSON file per config under ``results/``, named by the config's key.

Records are written atomically, so a crash never loses or corrupts earlier ones, and writers of
different configs never touch the same file. Every reader goes through ``read_record``, which
checks a record's schema: a damaged file (a copy cut short, a hand edit) is recomputed by the
runner, pending for a sweep and skipped by ``results``. The records committed with the repository
are kept in a compact form (``shipped``).
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable
from pathlib import Path

from mwanda.core.config import ConfigError
from mwanda.errors import MwandaWarning, UserError
from mwanda.study.config import REPO_ROOT, ExperimentConfig

RESULTS_DIR = REPO_ROOT / "results"


def check_results_dir(results_dir: str | Path) -> Path:
    """Create ``results_dir`` if needed and fail now if it cannot be written."""
    results_dir = Path(results_dir)
    try:
        results_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"cannot create results directory {results_dir} ({err}); choose another.") from None
    if not os.access(results_dir, os.W_OK):
        raise ConfigError(f"results directory {results_dir} is not writable; choose another.")
    return results_dir


def record_path(cfg: ExperimentConfig, results_dir: str | Path = RESULTS_DIR) -> Path:
    return Path(results_dir) / f"{cfg.key()}.json"


class RecordError(UserError, ValueError):
    """A record file is damaged or is not a record; the message names the file and the fix."""

    def __init__(self, path: str | Path, problem: str) -> None:
        super().__init__(str(path), problem)  # args rebuild it when pickled (submitit jobs)
        self.path, self.problem = Path(path), problem

    def __str__(self) -> str:
        return f"record {self.path} is damaged ({self.problem}); delete it or run its config again."


class RecordWarning(MwandaWarning):
    """A damaged record was skipped (results), counted as pending (sweep) or recomputed (run)."""


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# The types json.loads gives a JSON number (a bool is its own type, never one of these).
NUMBER_TYPES = (int, float)


def _all_numbers(values: list) -> bool:
    """Every element an int or a float (not a bool), as ``_is_number`` says, but by the set of
    their types: a record's paragraph lists hold ~10^4 numbers, checked on every read."""
    return set(map(type, values)) <= set(NUMBER_TYPES)


# The keys of a record and what each holds: (check, what the check wants).
RECORD_SCHEMA = {
    "key": (lambda v: isinstance(v, str), "a string"),
    "version": (lambda v: isinstance(v, str), "a string"),
    "config": (lambda v: isinstance(v, dict) and isinstance(v.get("method"), str), "an object with a method"),
    "metrics": (lambda v: isinstance(v, list), "a list"),
    "pruning": (lambda v: v is None or isinstance(v, dict), "an object or null"),
    "provenance": (lambda v: isinstance(v, dict), "an object"),
    "seconds": (_is_number, "a number"),
}
# The keys of a metric row: (the exact types of its value, as json.loads makes them; what the
# check wants). Exact types, not a check function per key: a record holds hundreds of rows.
METRIC_SCHEMA = {
    "language": ((str,), "a string"),
    "metric": ((str,), "a string"),
    "value": (NUMBER_TYPES, "a number"),
}


def read_record(
    path: str | Path, on_damage: str | None = None, reader: Callable[[Path], dict | None] | None = None
) -> dict | None:
    """The record stored at ``path``, or None if there is none. A damaged file raises
    RecordError, or, given ``on_damage`` (what the caller does instead), warns once with a
    RecordWarning naming the file and returns None: so no reader trusts or crashes on half a
    record, and the one bad file does not stop a sweep or a notebook. ``reader`` parses another
    form of record (``shipped.read``) under the same rule."""
    path = Path(path)
    try:
        rec = (reader or _parse_record)(path)
    except RecordError as err:
        if on_damage is None:
            raise
        warnings.warn(f"record {path} is damaged ({err.problem}); {on_damage}.", RecordWarning, stacklevel=3)
        return None
    return rec


def _parse_record(path: Path) -> dict | None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as err:
        raise RecordError(path, f"cannot be read: {err.__class__.__name__}") from None
    try:
        rec = json.loads(text)
    except json.JSONDecodeError as err:
        raise RecordError(path, f"invalid JSON: {err}") from None
    problem = record_problem(rec, path.stem)
    if problem:
        raise RecordError(path, problem)
    return rec


def record_problem(rec: object, key: str) -> str | None:
    """What makes ``rec`` not a valid record stored under ``key`` (the file stem), or None."""
    if not isinstance(rec, dict):
        return f"it holds {_short(rec)}, not a JSON object"
    missing = [k for k in RECORD_SCHEMA if k not in rec]
    if missing:
        return f"missing key(s) {missing}"
    problem = _schema_problem(rec, RECORD_SCHEMA, "")
    if problem:
        return problem
    if rec["key"] != key:
        return f"its key {rec['key']!r} is not its file name {key}"
    for i, row in enumerate(rec["metrics"]):
        problem = _metric_row_problem(row, f"metrics[{i}]")
        if problem:
            return problem
    return _paragraphs_problem(rec.get("paragraphs", {}))


def _metric_row_problem(row: object, where: str) -> str | None:
    """What makes ``row`` not a metric row (``METRIC_SCHEMA``), or None."""
    if type(row) is not dict:
        return f"{where} is {_short(row)}, not an object"
    for k, (types, want) in METRIC_SCHEMA.items():
        if k not in row:
            return f"{where}.{k} is missing"
        if type(row[k]) not in types:
            return f"{where}.{k} is {_short(row[k])}, not {want}"
    return None


def _paragraphs_problem(paragraphs: object) -> str | None:
    """``paragraphs`` (optional): {metric: {language: {"nll": [numbers], "bytes": [numbers]}}},
    the two lists of one language of equal length."""
    if not isinstance(paragraphs, dict):
        return f"paragraphs is {_short(paragraphs)}, not an object"
    for metric, langs in paragraphs.items():
        if not isinstance(langs, dict):
            return f"paragraphs.{metric} is {_short(langs)}, not an object"
        for lang, parts in langs.items():
            where = f"paragraphs.{metric}.{lang}"
            nll, size = (parts.get(k) if isinstance(parts, dict) else None for k in ("nll", "bytes"))
            if not all(isinstance(v, list) and _all_numbers(v) for v in (nll, size)):
                return f"{where} is {_short(parts)}, not an object of nll and bytes lists"
            if len(nll) != len(size):
                return f"{where} has {len(nll)} nll values but {len(size)} byte counts"
    return None


def _schema_problem(obj: dict, schema: dict, prefix: str) -> str | None:
    for k, (ok, want) in schema.items():
        if k not in obj:
            return f"{prefix}{k} is missing"
        if not ok(obj[k]):
            return f"{prefix}{k} is {_short(obj[k])}, not {want}"
    return None


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
