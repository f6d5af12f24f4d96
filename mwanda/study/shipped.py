"""Shipped records: the records behind the figures, committed in a compact Parquet form.

A record (``records``: one JSON file per config in a results folder) ships as
``results/shipped/<key>.parquet``: one row per evaluation paragraph (metric, language, NLL in
nats), with everything else (config, metric rows, pruning summary, provenance, seconds) as JSON in
the file's metadata. A paragraph's byte count is the same for every record evaluated on the same
text, so the counts are stored once per text, in ``texts/<digest>.parquet``, and a record names
its text's digest. Reading gives back exactly the dict the JSON record holds (floats written as
float64, so bit for bit), and goes through the same checks (``records.record_problem``).
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from mwanda.io import atomic_write_bytes
from mwanda.study import records
from mwanda.study.config import ExperimentConfig
from mwanda.study.records import RESULTS_DIR, RecordError, read_record, record_path, record_problem

# Committed with the repository (computed on 2 CPU cores): the runner reuses a shipped record whose
# key matches a config run against the shared results folder, so a fresh clone renders a notebook
# without recomputing it. Other results folders start empty, so they recompute everything.
SHIPPED_DIR = RESULTS_DIR / "shipped"
SUFFIX = ".parquet"
TEXTS = "texts"
META_KEY = b"mwanda.record"
# Parquet options: zstd, and float columns split by byte (their exponents then compress well).
_WRITE = {"compression": "zstd", "use_byte_stream_split": ["nll"], "use_dictionary": ["metric", "language"]}


def shipped_path(key: str, shipped_dir: str | Path | None = None) -> Path:
    return Path(shipped_dir or SHIPPED_DIR) / f"{key}{SUFFIX}"


def serves(results_dir: str | Path) -> bool:
    """Whether the shipped files stand behind ``results_dir`` (only the shared results folder)."""
    return Path(results_dir).resolve() == records.RESULTS_DIR.resolve()


def find_file(relative: str | Path, results_dir: str | Path) -> Path | None:
    """``results_dir / relative`` if it exists, else its shipped copy where ``serves`` says so."""
    for root in (Path(results_dir), SHIPPED_DIR if serves(results_dir) else None):
        if root is not None and (root / relative).exists():
            return root / relative
    return None


def find_record(
    cfg: ExperimentConfig, results_dir: str | Path | None = None, on_damage: str | None = None
) -> dict | None:
    """The record of ``cfg`` in ``results_dir``, else, for the shared results folder, the shipped
    one of the same key; None if neither holds it (``records.read_record``'s checks and
    ``on_damage`` apply to both)."""
    results_dir = results_dir or records.RESULTS_DIR
    found = read_record(record_path(cfg, results_dir), on_damage)
    if found is None and serves(results_dir):
        found = read_record(shipped_path(cfg.key()), on_damage, reader=read)
    return found


def _paragraph_columns(rec: dict) -> tuple[dict[str, list], dict[str, list]]:
    """The paragraphs of ``rec`` as columns: (metric, language, nll) and (metric, language, bytes)."""
    nlls: dict[str, list] = {"metric": [], "language": [], "nll": []}
    sizes: dict[str, list] = {"metric": [], "language": [], "bytes": []}
    for metric, langs in rec.get("paragraphs", {}).items():
        for lang, parts in langs.items():
            for cols, name in ((nlls, "nll"), (sizes, "bytes")):
                cols["metric"] += [metric] * len(parts[name])
                cols["language"] += [lang] * len(parts[name])
                cols[name] += parts[name]
    return nlls, sizes


def _to_parquet(columns: dict[str, list], types: dict[str, pa.DataType], meta: dict | None = None) -> bytes:
    table = pa.table({k: pa.array(v, type=types[k]) for k, v in columns.items()})
    if meta is not None:
        table = table.replace_schema_metadata({META_KEY: json.dumps(meta, ensure_ascii=False)})
    sink = pa.BufferOutputStream()
    options = {k: v for k, v in _WRITE.items() if k != "use_byte_stream_split" or "nll" in columns}
    pq.write_table(table, sink, **options)
    return sink.getvalue().to_pybytes()


def write(rec: dict, shipped_dir: str | Path) -> Path:
    """Ship ``rec`` (a checked record) into ``shipped_dir``; its text's byte counts too, if new.
    Both files are written atomically, the text first, so a shipped record never names a missing text."""
    problem = record_problem(rec, rec.get("key") if isinstance(rec, dict) else "")
    if problem:
        raise ValueError(f"not a record ({problem}); only checked records ship.")
    nlls, sizes = _paragraph_columns(rec)
    text_bytes = _to_parquet(sizes, {"metric": pa.string(), "language": pa.string(), "bytes": pa.int64()})
    digest = hashlib.sha256(json.dumps(sizes, separators=(",", ":")).encode()).hexdigest()[:20]
    text_path = Path(shipped_dir) / TEXTS / f"{digest}{SUFFIX}"
    if not text_path.exists():
        atomic_write_bytes(text_path, text_bytes)
    head = {k: v for k, v in rec.items() if k != "paragraphs"}
    head["metrics"] = {k: [row[k] for row in rec["metrics"]] for k in ("language", "metric", "value")}
    head["text"] = digest if "paragraphs" in rec else None
    types = {"metric": pa.string(), "language": pa.string(), "nll": pa.float64()}
    path = shipped_path(rec["key"], shipped_dir)
    atomic_write_bytes(path, _to_parquet(nlls, types, head))
    return path


def text_of(path: str | Path) -> str | None:
    """The digest of the text a shipped record names (None for a record without paragraphs),
    read from its metadata alone."""
    head = json.loads(pq.ParquetFile(path).schema_arrow.metadata[META_KEY])
    return head.get("text")


def read(path: str | Path) -> dict | None:
    """The record shipped at ``path`` (None if there is none), checked as a JSON record is;
    a damaged file, or one whose text is missing, raises RecordError."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        table = pq.ParquetFile(path).read()  # not read_table: that imports pyarrow.dataset (0.3 s)
        head = json.loads(table.schema.metadata[META_KEY])
    except (OSError, pa.ArrowException, KeyError, TypeError, ValueError) as err:
        raise RecordError(path, f"not a shipped record: {err.__class__.__name__}") from None
    rec = _assemble(path, table, head)
    problem = record_problem(rec, path.name.removesuffix(SUFFIX))
    if problem:
        raise RecordError(path, problem)
    return rec


@functools.lru_cache(maxsize=16)
def _text(path: str) -> pa.Table:
    """A text's byte counts (content-addressed, so a cached copy never goes stale)."""
    return pq.ParquetFile(path).read()


def _assemble(path: Path, table: pa.Table, head: object) -> dict:
    """The record dict from a shipped file's table and metadata (and its text's byte counts)."""
    try:
        metrics = head.pop("metrics")
        digest = head.pop("text")
        rows = [
            {"language": lang, "metric": m, "value": v}
            for lang, m, v in zip(metrics["language"], metrics["metric"], metrics["value"], strict=True)
        ]
    except (AttributeError, KeyError, TypeError, ValueError) as err:
        raise RecordError(path, f"its metadata is not a record's: {err.__class__.__name__}") from None
    rec = {**head, "metrics": rows}
    if digest is None:
        return rec
    text_path = path.parent / TEXTS / f"{digest}{SUFFIX}"
    try:
        sizes = _text(str(text_path))
    except (OSError, pa.ArrowException) as err:
        problem = f"its text {text_path.name} cannot be read: {err.__class__.__name__}"
        raise RecordError(path, problem) from None
    if table.num_rows != sizes.num_rows or table.select(["metric", "language"]) != sizes.select(
        ["metric", "language"]
    ):
        raise RecordError(path, f"its paragraphs do not match its text {text_path.name}")
    paragraphs: dict = {}
    nll = (table[c].to_pylist() for c in ("metric", "language", "nll"))
    cols = zip(*nll, sizes["bytes"].to_pylist(), strict=True)
    for metric, lang, nll, size in cols:
        parts = paragraphs.setdefault(metric, {}).setdefault(lang, {"nll": [], "bytes": []})
        parts["nll"].append(nll)
        parts["bytes"].append(size)
    return {**rec, "paragraphs": paragraphs}
