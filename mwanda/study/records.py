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
from mwanda.study import schema
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
    problem = schema.problem(rec)
    if problem is None and rec["key"] != key:
        return f"its key {rec['key']!r} is not its file name {key}"
    return problem
