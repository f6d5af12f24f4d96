"""Downstream tasks through lm-evaluation-harness: paper benchmarks and embedded proxy tasks.

Two profiles go through the same function, :func:`evaluate_tasks`, which hands the in-memory
(pruned) model to lm-eval's ``HFLM`` and returns accuracy per task and language:

* paper profile: XNLI, XCOPA, XStoryCloze, XWinograd, PAWS-X, Belebele (lm-eval's own tasks;
  their data come from the Hugging Face Hub at run time). Which language has which task is data:
  ``data/task_table.yaml``.
* embedded profile: *proxy tasks*, local multiple-choice tasks built deterministically from the
  held-out parallel corpus (:mod:`mwanda.build.proxy_tasks`, ``mwanda build tasks``):

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

import contextlib
import gzip
import json
import logging
import os
from collections.abc import Iterator, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from mwanda.data import REPO_ROOT, language_table
from mwanda.errors import UserError

TASKS_DIR = REPO_ROOT / "data" / "tasks"
TASK_TABLE_FILE = REPO_ROOT / "data" / "task_table.yaml"
MANIFEST_NAME = "MANIFEST.json"
PROXY_KINDS = ("continuation", "udhr")
PROXY_PREFIX = "mwanda_proxy"
# Bump when the item construction changes: lm-eval reports it as the task version.
PROXY_VERSION = 1.0
BUILD_HINT = "run `make tasks` (or `mwanda build tasks`)"


class TaskError(UserError, ValueError):
    """A task name, task file or task table entry is wrong; the message names the fix."""


def read_task_manifest(tasks_dir: Path = TASKS_DIR) -> dict[str, Any]:
    """The proxy tasks' MANIFEST.json (items per language and kind, sources, hashes)."""
    path = tasks_dir / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; {BUILD_HINT}")
    return json.loads(path.read_text(encoding="utf-8"))


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
        raise TaskError(
            f"unknown benchmark {benchmark!r}; known: {sorted(table)} "
            f"(add it to {TASK_TABLE_FILE.relative_to(REPO_ROOT)})"
        )
    row = table[benchmark]
    langs = list(row) if langs is None else list(langs)
    missing = [lang for lang in langs if lang not in row]
    if missing:
        raise TaskError(
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


# --------------------------------------------------------------------------
# Writing task files
# --------------------------------------------------------------------------


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
        raise TaskError("no task given; e.g. task_names('proxy_continuation', ['de'])")
    known = set(_task_manager(str(include_path) if include_path else None).all_tasks)
    for name in tasks:
        if name not in known:
            raise TaskError(_unknown_task_message(name, include_path))
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


def lm_eval_batch_size(model: Any, batch_size: int) -> int | str:
    """``"auto"`` when the model computes on a GPU (lm-eval then finds the largest batch that
    fits, as the paper-scale runs need), else ``batch_size`` (CPU: memory is the limit we set)."""
    first = next(model.parameters(), None)
    return "auto" if first is not None and first.device.type == "cuda" else batch_size


def evaluate_tasks(
    model: Any,
    tokenizer: Any,
    tasks: Sequence[str],
    batch_size: int | str = 8,
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
        raise TaskError(
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
