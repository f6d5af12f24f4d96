"""Atomic writes: a file or a directory is either the old one or the complete new one.

Everything the repository writes that a user or a later run reads (records, reports, corpora,
task files, pruned models) goes through these, so an interrupted run never leaves half of it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def umask() -> int:
    """The process umask (reading it means setting it: set it straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write via a temporary file in the same directory, then rename: never half a file."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """``atomic_write_text`` for bytes.

    mkstemp creates the file 0600; it gets the mode a plain ``open`` would give (0666 & ~umask).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o666 & ~umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def swap_in_dir(staging: Path, out: Path) -> None:
    """Replace directory ``out`` by the complete ``staging`` with renames; the old one survives
    (as ``<out>.old``) until the new one is in place."""
    backup = out.with_name(out.name + ".old")
    if backup.exists():
        shutil.rmtree(backup)
    if out.exists():
        out.rename(backup)
    staging.rename(out)
    if backup.exists():
        shutil.rmtree(backup)
