"""Text from Hugging Face datasets (the paper profile: CulturaX for calibration, FLORES+ for
evaluation), read in each dataset's own schema (``data/hub_datasets.yaml``), streamed and
normalized like the embedded corpus.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mwanda.data import EMBEDDED_DIR, LANGUAGES_FILE, DataError, language_table, normalize, repo_relative
from mwanda.errors import first_line

HUB_DATASETS_FILE = EMBEDDED_DIR / "hub_datasets.yaml"


@dataclass(frozen=True)
class HubSchema:
    """How one Hub dataset names language configs, splits and its text column."""

    config: str  # the column of data/languages.yaml that gives a language's config name
    text_field: str
    splits: dict[str, str]  # this repository's split name -> the dataset's


def hub_schema(dataset: str) -> HubSchema:
    """The schema of ``dataset`` (a Hub id, or a local copy named like it) from hub_datasets.yaml."""
    import yaml  # local import: only the paper profile reads it

    table = yaml.safe_load(HUB_DATASETS_FILE.read_text(encoding="utf-8"))["datasets"]
    name = str(dataset).rstrip("/").rsplit("/", 1)[-1]
    for hub_id, row in table.items():
        if hub_id.rsplit("/", 1)[-1] == name:
            return HubSchema(**row)
    raise DataError(
        f"dataset {dataset!r} has no schema in {repo_relative(HUB_DATASETS_FILE)} (known: {sorted(table)}); "
        "add a row, or name a local copy after the Hub dataset it mirrors."
    )


def hub_config(dataset: str, lang: str) -> str:
    """The config name of language ``lang`` in ``dataset`` (e.g. 'de' -> 'deu_Latn' in FLORES+)."""
    column = hub_schema(dataset).config
    table = language_table()
    name = getattr(table[lang], column) if lang in table else None
    if name is None:
        have = sorted(code for code, row in table.items() if getattr(row, column))
        raise DataError(
            f"language {lang!r} has no {column!r} name for {dataset} in {repo_relative(LANGUAGES_FILE)}; "
            f"languages that have one: {', '.join(have)}."
        )
    return name


def hub_split(dataset: str, split: str) -> str:
    """The dataset's own name for this repository's split ('test' -> 'devtest' in FLORES+)."""
    splits = hub_schema(dataset).splits
    if split not in splits:
        raise DataError(f"{dataset} has no split for {split!r}; it maps {splits}.")
    return splits[split]


def load_hub_text(
    dataset: str, lang: str, split: str, max_chars: int | None, revision: str | None = None
) -> str:
    """A language's text from a paper-profile dataset, in that dataset's own names and schema."""
    schema = hub_schema(dataset)
    if Path(dataset).is_dir():
        revision = None  # a local copy (a mirror, or a test's stand-in) has no Hub revisions
    return load_hf_text(
        str(dataset),
        lang=hub_config(dataset, lang),
        split=hub_split(dataset, split),
        text_field=schema.text_field,
        max_chars=max_chars,
        revision=revision,
    )


def load_hf_text(
    path: str,
    lang: str | None = None,
    split: str = "train",
    text_field: str = "text",
    data_files: Any = None,
    max_chars: int | None = None,
    **kw: Any,
) -> str:
    """Text of a Hugging Face dataset (paper profile), joined by blank lines.

    ``path`` is a Hub id (``uonlp/CulturaX``, ``openlanguagedata/flores_plus``)
    with ``lang`` as the config name, or a local builder (``json``, ``parquet``)
    with ``data_files``. With ``max_chars`` the dataset is streamed and read only
    until that many characters are collected.
    """
    import datasets  # local import: heavy, and only the paper profile needs it

    streaming = kw.pop("streaming", max_chars is not None)
    try:
        ds = datasets.load_dataset(path, lang, split=split, data_files=data_files, streaming=streaming, **kw)
    except Exception as err:  # datasets raises many types; name the fix once
        raise DataError(
            f"cannot load dataset {path!r} (config {lang!r}, split {split!r}): {first_line(err)}. "
            "Check the dataset id / data_files, and `huggingface-cli login` for gated data."
        ) from err
    return _join_texts(_iter_field(ds, text_field, path), max_chars)


def _iter_field(rows: Iterable[dict[str, Any]], field: str, path: str) -> Iterator[str]:
    for row in rows:
        if field not in row:
            raise DataError(f"dataset {path!r} has no field {field!r}; columns: {sorted(row)}")
        yield str(row[field])


def _join_texts(texts: Iterable[str], max_chars: int | None) -> str:
    """Join texts with blank lines, stopping (and truncating) at ``max_chars``."""
    parts: list[str] = []
    total = 0
    for text in texts:
        text = normalize(text)
        if not text:
            continue
        parts.append(text)
        total += len(text) + 2
        if max_chars is not None and total >= max_chars:
            break
    joined = "\n\n".join(parts)
    if not joined:
        raise DataError("the dataset yielded no text")
    return joined if max_chars is None else joined[:max_chars]
