"""Builder of the embedded proxy tasks (``mwanda build tasks``; the files in ``data/tasks/``).

Deterministic multiple-choice items from the held-out parallel corpus, written as lm-eval task
files: one hand-written template (``data/tasks/_proxy_template_yaml``, which holds the
``!function`` that reads the data) and, per language and kind, a small YAML that includes it
(emitted with ``yaml.safe_dump``) next to its gzipped JSONL items.

- ``proxy_continuation``: pick the true second part ("half") of a test-split help paragraph
  among 4 candidates; the distractors are second parts of other paragraphs of the same
  language, of about the same length;
- ``proxy_udhr``: the same on UDHR articles (out of domain; the 22 articles of at most 64
  English words, see :func:`proxy_configs`).

They are proxies: they measure how well a model continues text in each language, not reasoning.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import random
import re
import shutil
import tempfile
import unicodedata
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from mwanda.data import CORPUS_DIR, DataError, corpus_file, language_table, load_paragraphs, read_manifest
from mwanda.evaluation.tasks import (
    MANIFEST_NAME,
    PROXY_KINDS,
    PROXY_PREFIX,
    PROXY_VERSION,
    TASKS_DIR,
    proxy_task_name,
)
from mwanda.io import swap_in_dir

N_CHOICES = 4


# Scripts written without spaces between words: split them between characters (and evaluate
# with an empty target delimiter) instead of at a space.
UNSPACED_SCRIPTS = frozenset({"Han", "Japanese", "Khmer", "Tibetan", "Thai", "Lao", "Myanmar"})


# Scripts that mark syllable ends: split only after such a mark (Tibetan tsheg and shad), so
# that no candidate starts with a syllable delimiter.
BREAK_AFTER = {"Tibetan": "\u0f0b\u0f0d"}


@dataclass(frozen=True)
class ProxyConfig:
    """How the proxy items of one kind are drawn (recorded in every task's metadata)."""

    kind: str
    split: str  # corpus split the paragraphs come from
    n_items: int | None  # items per language (None: every eligible paragraph)
    seed: int = 0
    min_pivot_words: int = 0  # English pivot paragraph: length window, same ids in every language
    max_pivot_words: int = 10_000
    min_half: int = 3  # words per half (characters x 3 in unspaced scripts)
    id_prefix: str = ""  # only paragraph ids starting with this (UDHR: articles, not title/preamble)
    # Where a paragraph is split, as a fraction of its characters: random per item (the same in
    # every language), so that the context's length does not give away the gold's length.
    split_range: tuple[float, float] = (0.35, 0.65)
    # Distractor second halves are matched to the gold's length in bands of this relative width.
    length_tolerance: float = 0.05


def proxy_configs(split: str = "test", n_items: int | None = 200, seed: int = 0) -> dict[str, ProxyConfig]:
    """The default configuration of each proxy kind.

    Paragraphs of 16..64 English words are long enough to have a meaningful second half and
    short enough to keep 4 candidates per item cheap on a CPU. The cap also keeps every
    candidate within the embedded model's 256-token window (byte-hungry scripts such as
    Tibetan take ~2.7x the English tokens; lm-eval refuses a continuation longer than the
    window), which leaves 22 of the 30 UDHR articles.
    """
    return {
        "continuation": ProxyConfig("continuation", split, n_items, seed, 16, 64, 3),
        "udhr": ProxyConfig("udhr", "udhr", None, seed, 0, 64, 2, "art"),
    }


_WORD = re.compile(r"\w+")


def is_unspaced(lang: str) -> bool:
    """True for languages whose script does not separate words by spaces (split by characters)."""
    return language_table()[lang].script in UNSPACED_SCRIPTS


def _safe_char_boundary(text: str, i: int, break_after: str = "") -> bool:
    """A split before ``text[i]`` that keeps grapheme clusters and leaves no edge whitespace
    (and, when ``break_after`` is given, follows one of its characters)."""
    nxt, prev = text[i], text[i - 1]
    if nxt.isspace() or prev.isspace() or nxt in "\u200c\u200d":
        return False
    if break_after and prev not in break_after:
        return False
    # A combining mark continues the previous letter; after a virama/coeng (combining class 9)
    # the next consonant belongs to the same cluster.
    return not unicodedata.category(nxt).startswith("M") and unicodedata.combining(prev) != 9


def split_text(
    text: str, unspaced: bool, min_half: int, break_after: str = "", at: float = 0.5
) -> tuple[str, str] | None:
    """(first half, second half) split near ``at`` x the length (the middle by default), or
    None if a half would be too short.

    Spaced scripts split at the space nearest that character (the space itself is the
    lm-eval target delimiter); unspaced scripts split between characters, and
    ``first + second == text``. ``min_half`` counts words, or 3 x ``min_half`` characters.
    """
    mid = len(text) * at
    if unspaced:
        cuts = [i for i in range(1, len(text)) if _safe_char_boundary(text, i, break_after)]
    else:
        cuts = [i for i, ch in enumerate(text) if ch == " "]
    if not cuts:
        return None
    cut = min(cuts, key=lambda i: (abs(i - mid), i))
    first, second = (text[:cut], text[cut:]) if unspaced else (text[:cut], text[cut + 1 :])
    size = (lambda s: len(s) / 3) if unspaced else (lambda s: len(s.split()))
    if min(size(first), size(second)) < min_half:
        return None
    return first, second


def _untranslated(text: str, pivot: str | None) -> bool:
    """True when most words are shared with the English pivot (an English fallback left in
    a translated package, which would make the task an English one)."""
    if pivot is None:
        return False
    words, pivot_words = set(_WORD.findall(text.lower())), set(_WORD.findall(pivot.lower()))
    if not words or not pivot_words:
        return False
    return len(words & pivot_words) / len(words | pivot_words) >= 0.5


@cache
def eligible_halves(lang: str, cfg: ProxyConfig) -> dict[str, tuple[str, str]]:
    """Paragraph id -> (first half, second half) of the paragraphs ``lang`` can use.

    Eligibility is decided on the English pivot's length (so that every language draws from the
    same ids), then per language: translated, and splittable into two long-enough halves.
    """
    paras = load_paragraphs(lang, cfg.split)
    english = load_paragraphs("en", cfg.split)
    unspaced = is_unspaced(lang)
    break_after = BREAK_AFTER.get(language_table()[lang].script, "")
    out: dict[str, tuple[str, str]] = {}
    for pid in sorted(set(paras) & set(english)):
        if not pid.startswith(cfg.id_prefix):
            continue
        if not cfg.min_pivot_words <= len(english[pid].split()) <= cfg.max_pivot_words:
            continue
        if lang != "en" and _untranslated(paras[pid], english[pid]):
            continue
        at = random.Random(f"{cfg.seed}:{cfg.kind}:{pid}:split").uniform(*cfg.split_range)
        halves = split_text(paras[pid], unspaced, cfg.min_half, break_after, at)
        if halves is not None:
            out[pid] = halves
    return out


def make_items(lang: str, cfg: ProxyConfig) -> list[dict[str, Any]]:
    """The proxy items of one language, in a seeded order shared by all languages.

    Each item: ``id``, ``context`` (first half), ``choices`` (4 distinct second halves),
    ``label`` (index of the true one) and ``choice_ids`` (paragraph id of each choice).
    Paragraphs usable in the most languages come first, so that languages share their items.
    """
    halves = eligible_halves(lang, cfg)
    items: list[dict[str, Any]] = []
    for pid in _preference(cfg, f"{cfg.seed}:{cfg.kind}:order"):
        if cfg.n_items is not None and len(items) >= cfg.n_items:
            break
        if pid in halves:
            item = _make_item(pid, halves, cfg)
            if item is not None:
                items.append(item)
    return items


@cache
def _coverage(cfg: ProxyConfig) -> dict[str, int]:
    """Paragraph id -> number of embedded languages in which it is eligible.

    Counted over every embedded language (not only those being built), so that one language's
    items do not depend on which other languages are built with it.
    """
    counts: dict[str, int] = {}
    for lang in language_table():
        for pid in eligible_halves(lang, cfg):
            counts[pid] = counts.get(pid, 0) + 1
    return counts


@cache
def _preference(cfg: ProxyConfig, seed: str) -> tuple[str, ...]:
    """All eligible ids, most widely available first, ties in a random order seeded by ``seed``
    (string seeds are hashed with sha512: stable across runs and PYTHONHASHSEED)."""
    coverage = _coverage(cfg)
    ids = sorted(coverage)
    random.Random(seed).shuffle(ids)
    rank = {pid: i for i, pid in enumerate(ids)}
    return tuple(sorted(ids, key=lambda pid: (-coverage[pid], rank[pid])))


@cache
def _distractor_order(cfg: ProxyConfig, pid: str) -> tuple[str, ...]:
    """Distractor candidates of one item, best first: second halves of about the gold's length
    (bands of ``cfg.length_tolerance``), then the most widely available, then a random order seeded
    by the item id.

    Lengths are measured on the English pivot, so every language gets the same distractor ids
    where it has them; translation lengths vary, so in each language the gold is about as likely
    to be the shortest (or longest) candidate as any other (which matters to the summed
    log-likelihood). With the random split point (``cfg.split_range``) this keeps lengths from
    giving the answer away: with a split in the middle and unmatched distractors, "the candidate
    as long as the context" was the gold in ~80% of the items; now in ~30% (chance: 25%).
    """
    english = eligible_halves("en", cfg)
    coverage = _coverage(cfg)
    rank = _rank(cfg, pid)
    gold_len = len(english[pid][1]) if pid in english else None

    def key(other: str) -> tuple[int, int, int]:
        if gold_len is None or other not in english:
            return 1_000_000, -coverage[other], rank[other]  # no pivot length: after the matched ones
        band = int(abs(math.log(len(english[other][1]) / gold_len)) / math.log1p(cfg.length_tolerance))
        return band, -coverage[other], rank[other]

    return tuple(sorted((other for other in rank if other != pid), key=key))


@cache
def _rank(cfg: ProxyConfig, pid: str) -> dict[str, int]:
    """A random rank of every eligible id, seeded by the item id (string seeds are hashed with
    sha512: stable across runs and PYTHONHASHSEED)."""
    ids = sorted(_coverage(cfg))
    random.Random(f"{cfg.seed}:{cfg.kind}:{pid}").shuffle(ids)
    return {other: i for i, other in enumerate(ids)}


def _make_item(pid: str, halves: dict[str, tuple[str, str]], cfg: ProxyConfig) -> dict[str, Any] | None:
    # Seeded by item id: the same gold position and distractor order in every language, so that
    # items share their distractors wherever the language has them.
    gold_pos = random.Random(f"{cfg.seed}:{cfg.kind}:{pid}:gold").randrange(N_CHOICES)
    candidates = _distractor_order(cfg, pid)
    context, gold = halves[pid]
    picked: list[str] = []
    seen = {gold.casefold()}
    for other in candidates:
        if other == pid or other not in halves or halves[other][1].casefold() in seen:
            continue
        picked.append(other)
        seen.add(halves[other][1].casefold())
        if len(picked) == N_CHOICES - 1:
            break
    else:
        return None  # too few distinct distractors in this language
    ids = [*picked[:gold_pos], pid, *picked[gold_pos:]]
    return {
        "id": pid,
        "context": context,
        "choices": [halves[i][1] for i in ids],
        "label": gold_pos,
        "choice_ids": ids,
    }


def write_jsonl_gz(path: Path, rows: list[dict[str, Any]]) -> None:
    """One JSON object per line, gzip with mtime=0 and no file name, so rebuilds are byte-identical."""
    payload = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode("utf-8")
    with (
        path.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as fh,
    ):
        fh.write(payload)


TEMPLATE_NAME = "_proxy_template_yaml"  # hand-written, in data/tasks; holds the !function


def task_yaml(kind: str, lang: str, data_file: str, meta: dict[str, Any]) -> str:
    """The lm-eval YAML of one proxy task: ``include:`` of the shared template plus what differs.

    ``custom_dataset`` (in the template) reads the JSONL named in ``dataset_kwargs`` relative to
    this YAML file, so the committed files carry no absolute path.
    """
    task = {
        "include": f"../{TEMPLATE_NAME}",
        "task": proxy_task_name(kind, lang),
        "tag": [f"{PROXY_PREFIX}_{kind}", PROXY_PREFIX],
        "dataset_kwargs": {"data_files": {"test": data_file}},
        "target_delimiter": "" if is_unspaced(lang) else " ",
        "metadata": {"version": PROXY_VERSION, **meta},
    }
    header = "# Generated by `mwanda build tasks`; do not edit (a rebuild must reproduce it).\n"
    return header + yaml.safe_dump(task, sort_keys=False, allow_unicode=True, width=100)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_task(out: Path, lang: str, cfg: ProxyConfig) -> dict[str, Any]:
    """Write ``<kind>/<lang>.jsonl.gz`` and its YAML under ``out``; return its manifest row."""
    items = make_items(lang, cfg)
    if not items:
        raise DataError(f"{lang}: no {cfg.kind} item could be built from split {cfg.split!r}")
    folder = out / cfg.kind
    folder.mkdir(parents=True, exist_ok=True)
    data_path = folder / f"{lang}.jsonl.gz"
    write_jsonl_gz(data_path, items)
    data_sha = _sha256(data_path.read_bytes())
    source = corpus_file(lang, cfg.split, CORPUS_DIR).relative_to(CORPUS_DIR).as_posix()
    meta = {
        "kind": cfg.kind,
        "lang": lang,
        "items": len(items),
        "config": {k: v for k, v in asdict(cfg).items() if k != "kind"},
        "source": f"data/corpus/{source}",
        "source_sha256": read_manifest()["files"][source]["sha256"],
        "data_sha256": data_sha,
    }
    yaml_path = folder / f"{proxy_task_name(cfg.kind, lang)}.yaml"
    yaml_path.write_text(task_yaml(cfg.kind, lang, data_path.name, meta), encoding="utf-8")
    return {"task": proxy_task_name(cfg.kind, lang), "items": len(items), "data_sha256": data_sha}


def build_proxy_tasks(
    out_dir: Path | None = None,
    langs: Sequence[str] | None = None,
    split: str = "test",
    n_items: int | None = 200,
    seed: int = 0,
    kinds: Sequence[str] = PROXY_KINDS,
) -> dict[str, Any]:
    """Build every proxy task (JSONL + lm-eval YAML) into ``out_dir`` (default ``data/tasks``).

    Written into a temporary sibling folder and renamed into place at the end, so a failed
    build leaves the existing tasks untouched; ``out_dir`` then holds exactly ``langs``.
    Returns the manifest (also written as ``MANIFEST.json``, with a ``README.md``).
    """
    out = Path(out_dir) if out_dir is not None else TASKS_DIR
    table = language_table()
    langs = list(langs) if langs is not None else list(table)
    unknown = [lang for lang in langs if lang not in table]
    if unknown:
        raise DataError(f"unknown language {unknown}; embedded languages are {list(table)}")
    bad_kinds = [k for k in kinds if k not in PROXY_KINDS]
    if bad_kinds:
        raise DataError(f"unknown proxy kind {bad_kinds}; use {PROXY_KINDS}")
    configs = proxy_configs(split, n_items, seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}-build-") as tmp:
        staging = Path(tmp) / out.name
        rows = {kind: {lang: write_task(staging, lang, configs[kind]) for lang in langs} for kind in kinds}
        manifest = {
            "description": "M-Wanda proxy tasks (lm-eval YAML + JSONL), see mwanda/tasks.py",
            "version": PROXY_VERSION,
            "configs": {kind: asdict(configs[kind]) for kind in kinds},
            "tasks": rows,
        }
        (staging / MANIFEST_NAME).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        (staging / "README.md").write_text(readme(manifest), encoding="utf-8")
        shutil.copyfile(TASKS_DIR / TEMPLATE_NAME, staging / TEMPLATE_NAME)  # the hand-written part
        swap_in_dir(staging, out)
    return manifest


def readme(manifest: dict[str, Any]) -> str:
    """The ``README.md`` of a task folder: what the proxy tasks are and how many items each has."""
    return (
        "# Proxy tasks (generated: `mwanda build tasks`, do not edit)\n\n"
        "Local multiple-choice *proxy tasks* of the embedded profile, one lm-eval task per language\n"
        "and kind (`mwanda_proxy_<kind>_<lang>`, tags `mwanda_proxy_<kind>` and `mwanda_proxy`).\n"
        "Each item is the first part of a paragraph (cut at a word boundary, or between characters\n"
        "in scripts without spaces, at a random point between 35% and 65% of its length) and 4\n"
        "candidate second parts: the true one and those of 3 other paragraphs of the same language\n"
        "and about the same length (`label` = index of the true one). `continuation`: LibreOffice\n"
        "help paragraphs of the test split; `udhr`: UDHR articles of at most 64 English words.\n"
        "Items and distractors share paragraph ids across languages wherever the language has them.\n"
        "Scored by lm-eval (`acc`: summed log-likelihood, `acc_norm`: per character); chance is 0.25.\n"
        "They are proxies for language modelling quality, not the paper's benchmarks.\n\n"
        "Items per language:\n\n```\n" + summary(manifest) + "\n```\n"
    )


def summary(manifest: dict[str, Any]) -> str:
    """Items per language and kind, as a plain-text table."""
    kinds = list(manifest["tasks"])
    langs = list(manifest["tasks"][kinds[0]])
    lines = ["lang " + " ".join(f"{k:>13}" for k in kinds)]
    for lang in langs:
        lines.append(f"{lang:<4} " + " ".join(f"{manifest['tasks'][k][lang]['items']:>13}" for k in kinds))
    return "\n".join(lines)
