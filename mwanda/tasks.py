"""Downstream tasks through lm-evaluation-harness: paper benchmarks and embedded proxy tasks.

Two profiles go through the same function, :func:`evaluate_tasks`, which hands the in-memory
(pruned) model to lm-eval's ``HFLM`` and returns accuracy per task and language:

* paper profile: XNLI, XCOPA, XStoryCloze, XWinograd, PAWS-X, Belebele (lm-eval's own tasks;
  their data come from the Hugging Face Hub at run time). Which language has which task is data:
  ``data/task_table.yaml``.
* embedded profile: *proxy tasks*, local multiple-choice tasks built deterministically from the
  held-out parallel corpus (:func:`build_proxy_tasks`, ``python -m mwanda.tasks build``):

  - ``proxy_continuation``: pick the true second part ("half") of a test-split help paragraph
    among 4 candidates; the distractors are second parts of other paragraphs of the same
    language, of about the same length;
  - ``proxy_udhr``: the same on UDHR articles (out of domain; the 22 articles of at most 64
    English words, see :func:`proxy_configs`).

  They are declared as lm-eval YAML tasks over local JSONL files in ``data/tasks/`` (one task per
  language and kind, e.g. ``mwanda_proxy_continuation_de``, tagged ``mwanda_proxy_continuation``
  and ``mwanda_proxy``), so lm-eval does the scoring (``acc``, ``acc_norm``). They are proxies:
  they measure how well a model continues text in each language, not reasoning.

Nothing here runs at import time; lm-eval, torch and datasets are imported when needed.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import json
import logging
import math
import os
import random
import re
import sys
import tempfile
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any

from mwanda.data import CORPUS_DIR, REPO_ROOT, corpus_file, language_table, load_paragraphs, read_manifest
from mwanda.io import swap_in_dir

TASKS_DIR = REPO_ROOT / "data" / "tasks"
TASK_TABLE_FILE = REPO_ROOT / "data" / "task_table.yaml"
MANIFEST_NAME = "MANIFEST.json"
PROXY_KINDS = ("continuation", "udhr")
PROXY_PREFIX = "mwanda_proxy"
# Bump when the item construction changes: lm-eval reports it as the task version.
PROXY_VERSION = 1.0
N_CHOICES = 4
# Scripts written without spaces between words: split them between characters (and evaluate
# with an empty target delimiter) instead of at a space.
UNSPACED_SCRIPTS = frozenset({"Han", "Japanese", "Khmer", "Tibetan", "Thai", "Lao", "Myanmar"})
# Scripts that mark syllable ends: split only after such a mark (Tibetan tsheg and shad), so
# that no candidate starts with a syllable delimiter.
BREAK_AFTER = {"Tibetan": "\u0f0b\u0f0d"}
BUILD_HINT = "run `python -m mwanda.tasks build`"


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


# --------------------------------------------------------------------------
# Task table and names
# --------------------------------------------------------------------------


@cache
def task_table(path: Path = TASK_TABLE_FILE) -> dict[str, dict[str, str]]:
    """benchmark -> language code -> lm-eval task name, paper and proxy benchmarks together.

    Proxy benchmarks list the embedded languages of ``data/languages.yaml``; whether their task
    files exist is checked when tasks are resolved.
    """
    import yaml  # local import: only needed when the table is read

    if not path.exists():
        raise FileNotFoundError(f"task table {path} is missing; restore it from git")
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    table = {bench: dict(langs) for bench, langs in raw["paper"].items()}
    for bench, pattern in raw["proxy"].items():
        table[bench] = {lang: pattern.format(lang=lang) for lang in language_table()}
    return table


def proxy_task_name(kind: str, lang: str) -> str:
    """``mwanda_proxy_<kind>_<lang>``: the lm-eval name of one proxy task."""
    return f"{PROXY_PREFIX}_{kind}_{lang}"


def task_names(benchmark: str, langs: Sequence[str] | None = None) -> list[str]:
    """lm-eval task names of ``benchmark`` (e.g. ``xnli``, ``proxy_udhr``) for ``langs``
    (all of the benchmark's languages when None). Unknown benchmarks or languages raise."""
    table = task_table()
    if benchmark not in table:
        raise ValueError(
            f"unknown benchmark {benchmark!r}; known: {sorted(table)} "
            f"(add it to {TASK_TABLE_FILE.relative_to(REPO_ROOT)})"
        )
    row = table[benchmark]
    langs = list(row) if langs is None else list(langs)
    missing = [lang for lang in langs if lang not in row]
    if missing:
        raise ValueError(
            f"benchmark {benchmark!r} has no language {missing}; it has {sorted(row)} "
            f"(see {TASK_TABLE_FILE.relative_to(REPO_ROOT)})"
        )
    return [row[lang] for lang in langs]


@cache
def _reverse_table() -> dict[str, tuple[str, str]]:
    return {name: (bench, lang) for bench, row in task_table().items() for lang, name in row.items()}


def describe_task(name: str) -> tuple[str, str | None]:
    """(benchmark, language) of an lm-eval task name; (name, None) when it is not in the table."""
    return _reverse_table().get(name, (name, None))


# --------------------------------------------------------------------------
# Building proxy items
# --------------------------------------------------------------------------

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


# --------------------------------------------------------------------------
# Writing task files
# --------------------------------------------------------------------------


def write_jsonl_gz(path: Path, rows: list[dict[str, Any]]) -> None:
    """One JSON object per line, gzip with mtime=0 and no file name, so rebuilds are byte-identical."""
    payload = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode("utf-8")
    with (
        path.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as fh,
    ):
        fh.write(payload)


def task_yaml(kind: str, lang: str, data_file: str, meta: dict[str, Any]) -> str:
    """The lm-eval YAML of one proxy task (written as text: PyYAML cannot emit ``!function``).

    ``custom_dataset`` reads the JSONL named in ``dataset_kwargs`` relative to this YAML file,
    so the committed files carry no absolute path.
    """
    delimiter = "" if is_unspaced(lang) else " "
    meta_lines = "".join(f"  {key}: {json.dumps(value)}\n" for key, value in meta.items())
    return (
        "# Generated by `python -m mwanda.tasks build`; do not edit (a rebuild must reproduce it).\n"
        f"task: {proxy_task_name(kind, lang)}\n"
        f"tag:\n  - {PROXY_PREFIX}_{kind}\n  - {PROXY_PREFIX}\n"
        "dataset_path: json  # documentation only: custom_dataset reads the file\n"
        f"dataset_kwargs:\n  data_files:\n    test: {data_file}\n"
        "custom_dataset: !function mwanda.tasks.load_task_jsonl\n"
        "test_split: test\n"
        "output_type: multiple_choice\n"
        "num_fewshot: 0\n"
        "doc_to_text: context\n"
        "doc_to_choice: choices\n"
        "doc_to_target: label\n"
        f"target_delimiter: {json.dumps(delimiter)}\n"
        "metric_list:\n"
        "  - metric: acc\n    aggregation: mean\n    higher_is_better: true\n"
        "  - metric: acc_norm\n    aggregation: mean\n    higher_is_better: true\n"
        f"metadata:\n  version: {PROXY_VERSION}\n{meta_lines}"
    )


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_task(out: Path, lang: str, cfg: ProxyConfig) -> dict[str, Any]:
    """Write ``<kind>/<lang>.jsonl.gz`` and its YAML under ``out``; return its manifest row."""
    items = make_items(lang, cfg)
    if not items:
        raise ValueError(f"{lang}: no {cfg.kind} item could be built from split {cfg.split!r}")
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
        raise ValueError(f"unknown language {unknown}; embedded languages are {list(table)}")
    bad_kinds = [k for k in kinds if k not in PROXY_KINDS]
    if bad_kinds:
        raise ValueError(f"unknown proxy kind {bad_kinds}; use {PROXY_KINDS}")
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
        swap_in_dir(staging, out)
    return manifest


def readme(manifest: dict[str, Any]) -> str:
    """The ``README.md`` of a task folder: what the proxy tasks are and how many items each has."""
    return (
        "# Proxy tasks (generated: `python -m mwanda.tasks build`, do not edit)\n\n"
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


def load_task_jsonl(data_files: dict[str, str], config_source: str | None = None, **_: Any) -> Any:
    """lm-eval ``custom_dataset``: a ``DatasetDict`` of the JSONL(.gz) files in ``data_files``.

    Relative paths resolve against the task's YAML folder (lm-eval passes the YAML path as the
    ``config_source`` metadata), else against ``data/tasks``: the task works from any cwd.
    """
    import datasets  # local import: heavy

    base = Path(config_source).parent if config_source and config_source != "inline" else TASKS_DIR
    splits = {}
    for split, name in data_files.items():
        path = Path(name) if Path(name).is_absolute() else base / name
        if not path.exists():
            raise FileNotFoundError(f"proxy task data {path} is missing; {BUILD_HINT}")
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as fh:
            splits[split] = datasets.Dataset.from_list([json.loads(line) for line in fh])
    return datasets.DatasetDict(splits)


# --------------------------------------------------------------------------
# Evaluation through lm-eval
# --------------------------------------------------------------------------


@cache
def _task_manager(include_path: str | None) -> Any:
    """lm-eval's TaskManager over its own tasks plus ``include_path`` (indexing takes seconds: cached)."""
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=include_path)


def check_tasks(tasks: Sequence[str], include_path: Path | str | None = TASKS_DIR) -> list[str]:
    """Validate lm-eval task names (tasks, tags or groups); raise ValueError naming the fix.

    Cheap (no data, no model): call it before any expensive work.
    """
    if isinstance(tasks, str):
        tasks = [tasks]
    if not tasks:
        raise ValueError("no task given; e.g. task_names('proxy_continuation', ['de'])")
    known = set(_task_manager(str(include_path) if include_path else None).all_tasks)
    for name in tasks:
        if name not in known:
            raise ValueError(_unknown_task_message(name, include_path))
    return list(tasks)


def _unknown_task_message(name: str, include_path: Path | str | None) -> str:
    """Say whether the benchmark or the language is unknown, or the proxy files are missing."""
    for bench, row in task_table().items():
        prefix = os.path.commonprefix(list(row.values())).rsplit("_", 1)[0] + "_"
        if not name.startswith(prefix):
            continue
        if name in row.values():  # in our table, so its YAML is what lm-eval did not find
            return f"task {name!r} has no task files under {include_path}; {BUILD_HINT}"
        return (
            f"unknown language {name[len(prefix) :]!r} for benchmark {bench!r} (task {name!r}); "
            f"it has {sorted(row)}; use task_names({bench!r}, langs), "
            f"see {TASK_TABLE_FILE.relative_to(REPO_ROOT)}"
        )
    return (
        f"unknown task {name!r}: not an lm-eval task, tag or group, nor a proxy task under "
        f"{include_path}. Benchmarks: {sorted(task_table())}; build names with task_names(benchmark, langs)."
    )


class _DropCustomDatasetNote(logging.Filter):
    """lm-eval warns once per task that uses ``custom_dataset`` (every proxy task) about CLI
    ``--metadata``, which does not apply here; drop just that message."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Custom kwargs can be passed" not in record.getMessage()


@contextlib.contextmanager
def _quiet_custom_dataset_note() -> Iterator[None]:
    logger = logging.getLogger("lm_eval.api.task")
    note = _DropCustomDatasetNote()
    logger.addFilter(note)
    try:
        yield
    finally:
        logger.removeFilter(note)


def evaluate_tasks(
    model: Any,
    tokenizer: Any,
    tasks: Sequence[str],
    batch_size: int = 8,
    limit: int | float | None = None,
    include_path: Path | str | None = TASKS_DIR,
    max_length: int | None = None,
    log_samples: bool = False,
) -> dict[str, Any]:
    """Evaluate ``model`` (in memory, e.g. just pruned) on lm-eval ``tasks``.

    Names are checked and the task data loaded before the model is touched, so a typo or a
    missing file fails in seconds. Returns ``{"rows": [...], "versions": {...}, "config": {...}}``
    with one row per task: benchmark, lang, n, acc, acc_stderr, acc_norm, acc_norm_stderr,
    version (plus ``"samples"`` when ``log_samples``).
    """
    import lm_eval
    from lm_eval.models.huggingface import HFLM

    names = check_tasks(tasks, include_path)
    manager = _task_manager(str(include_path) if include_path else None)
    try:
        with _quiet_custom_dataset_note():
            loaded = manager.load(names)  # reads the data: Hub downloads fail here, before the model
    except Exception as err:  # lm-eval/datasets raise many types; name the fix once
        raise ValueError(
            f"cannot load the data of {names}: {err}. Proxy tasks: {BUILD_HINT}; paper tasks need "
            "the Hugging Face Hub (network, or a pre-filled HF_DATASETS_CACHE)."
        ) from err
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, max_length=max_length)
    results = lm_eval.simple_evaluate(
        model=lm,
        tasks=list(loaded["tasks"].values()),
        task_manager=manager,
        limit=limit,
        log_samples=log_samples,
        bootstrap_iters=1000,  # acc is a mean: its stderr is closed-form, not bootstrapped
    )
    return tidy_results(results, log_samples) | {
        "config": {
            "lm_eval": lm_eval.__version__,
            "batch_size": batch_size,
            "limit": limit,
            "max_length": lm.max_length,
            "include_path": str(include_path) if include_path else None,
        }
    }


def tidy_results(results: dict[str, Any], with_samples: bool = False) -> dict[str, Any]:
    """Rows of (task, benchmark, lang, n, acc, acc_norm, stderr, version) from lm-eval's output."""
    rows = []
    for name, metrics in sorted(results["results"].items()):
        if name not in results.get("n-samples", {}):
            continue  # a group/tag aggregate, not a task
        bench, lang = describe_task(name)
        row: dict[str, Any] = {"task": name, "benchmark": bench, "lang": lang}
        row["n"] = results["n-samples"][name]["effective"]
        for key in ("acc", "acc_norm"):
            if f"{key},none" in metrics:
                row[key] = metrics[f"{key},none"]
                stderr = metrics.get(f"{key}_stderr,none")
                row[f"{key}_stderr"] = stderr if isinstance(stderr, float) else None  # "N/A" for n = 1
        row["version"] = results["versions"].get(name)
        rows.append(row)
    out: dict[str, Any] = {"rows": rows, "versions": {r["task"]: r["version"] for r in rows}}
    meta = {n: c.get("metadata", {}) for n, c in results.get("configs", {}).items()}
    out["metadata"] = {n: {k: v for k, v in m.items() if k != "config_source"} for n, m in meta.items()}
    if with_samples:
        out["samples"] = results.get("samples", {})
    return out


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


def summary(manifest: dict[str, Any]) -> str:
    """Items per language and kind, as a plain-text table."""
    kinds = list(manifest["tasks"])
    langs = list(manifest["tasks"][kinds[0]])
    lines = ["lang " + " ".join(f"{k:>13}" for k in kinds)]
    for lang in langs:
        lines.append(f"{lang:<4} " + " ".join(f"{manifest['tasks'][k][lang]['items']:>13}" for k in kinds))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """CLI: ``python -m mwanda.tasks build [--out DIR] [--langs ..] [--n-items N] [--seed S]``."""
    parser = argparse.ArgumentParser(prog="python -m mwanda.tasks", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="(re)build the proxy tasks into data/tasks")
    b.add_argument("--out", type=Path, default=TASKS_DIR)
    b.add_argument("--langs", nargs="+", default=None, help="subset of data/languages.yaml")
    b.add_argument("--n-items", type=int, default=200, help="continuation items per language")
    b.add_argument("--seed", type=int, default=0)
    sub.add_parser("summary", help="print items per language and kind of data/tasks")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "build":
            manifest = build_proxy_tasks(args.out.resolve(), args.langs, n_items=args.n_items, seed=args.seed)
        else:
            manifest = json.loads((TASKS_DIR / MANIFEST_NAME).read_text())
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(summary(manifest))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
