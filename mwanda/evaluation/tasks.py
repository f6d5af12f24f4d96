"""Downstream tasks through lm-evaluation-harness: paper benchmarks and embedded proxy tasks.

Two profiles go through the same function, :func:`evaluate_tasks`, which hands the in-memory
(pruned) model to lm-eval's ``HFLM`` and returns accuracy per task and language:

* paper profile: XNLI, XCOPA, XStoryCloze, XWinograd, PAWS-X, Belebele (lm-eval's own tasks;
  their data come from the Hugging Face Hub at run time, or from a local mirror: ``task_data``,
  see :func:`mirror_overlay`). Which language has which task is data: ``data/task_table.yaml``.
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

import atexit
import gzip
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from mwanda.data import REPO_ROOT, language_table
from mwanda.errors import UserError, first_line
from mwanda.evaluation.lm_eval_quiet import hflm, no_datasets_progress_bars, quiet_lm_eval_notes

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


def _task_manager(include_path: Path | str | None, *more: Path, defaults: bool = True) -> Any:
    """lm-eval's TaskManager over its own tasks (unless not ``defaults``) plus ``include_path``
    and ``more`` folders (a mirror's overlay); later folders override earlier ones."""
    paths = tuple(str(p) for p in (include_path, *more) if p)
    return _cached_task_manager(paths, defaults)


def _manager_for(names: Sequence[str], include_path: Path | str | None, *more: Path) -> Any:
    """The manager that knows ``names``: ``include_path``'s alone when it holds them all (the
    proxy tasks), since indexing lm-eval's own ~14,000 task files takes seconds in every
    process; else lm-eval's own tasks with the folders on top."""
    if include_path and not more and Path(include_path).is_dir():
        local = _task_manager(include_path, defaults=False)
        if set(names) <= set(local.all_tasks):
            return local
    return _task_manager(include_path, *more)


@cache
def _cached_task_manager(paths: tuple[str, ...], defaults: bool = True) -> Any:
    """Indexing lm-eval's tasks takes seconds: one manager per set of folders and process."""
    from lm_eval.tasks import TaskManager

    with quiet_lm_eval_notes():
        return TaskManager(include_path=list(paths) or None, include_defaults=defaults)


# --------------------------------------------------------------------------
# lm-eval's own task configs, with their data read from a local mirror
# --------------------------------------------------------------------------


class _TaskYaml(yaml.SafeLoader):
    """Reads lm-eval task YAML as data: ``!function`` tags stay strings (we never call them)."""


_TaskYaml.add_constructor("!function", lambda loader, node: f"!function {loader.construct_scalar(node)}")


def lm_eval_task_field(name: str, key: str) -> Any:
    """``key`` of lm-eval's own config of task ``name`` (``dataset_path``, ``dataset_name``,
    ``test_split``, ...), following its ``include`` chain as lm-eval does (the file wins over
    what it includes, later includes over earlier ones); None when unset."""
    path = _own_task_yaml(name)
    if path is None:
        raise TaskError(f"{name!r} is not one of lm-eval's own YAML tasks; it has no config to read.")
    return _yaml_field(path, key)


def _own_task_yaml(name: str) -> Path | None:
    """The YAML file of lm-eval's own task ``name``; None for tasks it does not ship (ours)."""
    entry = _task_manager(None).task_index.get(name)
    path = getattr(entry, "yaml_path", None)
    return None if path is None else Path(path)


def _yaml_field(path: Path, key: str) -> Any:
    cfg = yaml.load(path.read_text(encoding="utf-8"), Loader=_TaskYaml)  # noqa: S506 (SafeLoader subclass)
    if key in cfg:
        return cfg[key]
    includes = cfg.get("include") or []
    for inc in reversed(includes if isinstance(includes, list) else [includes]):
        value = _yaml_field(path.parent / inc, key)  # absolute `inc` stays absolute
        if value is not None:
            return value
    return None


@cache
def mirror_overlay(task_data: str, names: tuple[str, ...]) -> Path:
    """A folder of task YAMLs that redirect lm-eval tasks ``names`` to a local mirror.

    ``task_data`` holds copies of the tasks' Hub datasets under their Hub ids, in the Hub's own
    layout (``<task_data>/facebook/xnli`` with the dataset card's ``configs:`` and each config's
    splits and fields). Each overlay YAML *includes* lm-eval's own config of the task by path and
    changes one key, ``dataset_path``: prompts, fields, splits, metrics and version stay lm-eval's.
    Tasks that are not lm-eval's own (the proxy tasks) are left alone. The folder is temporary
    (removed at exit); a task whose dataset has no copy in the mirror raises, naming the folder
    it expected, before any data or model is loaded.
    """
    root = Path(task_data)
    if not root.is_dir():
        raise TaskError(f"task_data={task_data!r} is not a folder; give the folder of the tasks' datasets.")
    overlays, missing = {}, []
    for name in names:
        own = _own_task_yaml(name)
        if own is None:
            continue
        local = root / _yaml_field(own, "dataset_path")
        if not local.is_dir():
            missing.append(f"{name} needs {local}")
            continue
        overlays[name] = {"include": str(own), "task": name, "dataset_path": str(local)}
    if missing:
        raise TaskError(
            f"task_data={task_data!r} lacks datasets: {'; '.join(missing)}. Copy each Hub dataset there "
            "under its Hub id, or leave task_data unset to read the Hub."
        )
    out = Path(tempfile.mkdtemp(prefix="mwanda-lm-eval-"))
    atexit.register(shutil.rmtree, out, True)
    for name, cfg in overlays.items():
        (out / f"{name}.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return out


def check_tasks(tasks: Sequence[str], include_path: Path | str | None = TASKS_DIR) -> list[str]:
    """Validate lm-eval task names (tasks, tags or groups); raise ValueError naming the fix.

    Cheap (no data, no model): call it before any expensive work.
    """
    if isinstance(tasks, str):
        tasks = [tasks]
    if not tasks:
        raise TaskError("no task given; e.g. task_names('proxy_continuation', ['de'])")
    known = set(_manager_for(tasks, str(include_path) if include_path else None).all_tasks)
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


def lm_eval_batch_size(model: Any, batch_size: int) -> int | str:
    """``"auto"`` when the model computes on a GPU (lm-eval then finds the largest batch that
    fits, as the paper-scale runs need), else ``batch_size`` (CPU: memory is the limit we set)."""
    first = next(model.parameters(), None)
    return "auto" if first is not None and first.device.type == "cuda" else batch_size


def load_tasks(
    tasks: Sequence[str], include_path: Path | str | None = TASKS_DIR, task_data: Path | str | None = None
) -> tuple[Any, dict[str, Any]]:
    """(task manager, lm-eval's loaded tasks): names checked, every task's data read (from the
    Hub, its cache, ``task_data`` or the proxy files). No model needed: the paper profile calls
    it before loading an 8B model, so a gated or missing dataset fails in seconds."""
    names = check_tasks(tasks, include_path)
    overlay = (mirror_overlay(str(task_data), tuple(names)),) if task_data else ()
    manager = _manager_for(names, include_path, *overlay)
    try:
        with quiet_lm_eval_notes(), no_datasets_progress_bars():
            return manager, manager.load(names)
    except Exception as err:  # lm-eval/datasets raise many types; name the fix once
        source = f"the mirror {task_data}" if task_data else "the Hugging Face Hub"
        raise TaskError(
            f"cannot load the data of {names} from {source}: {first_line(err)}. Proxy tasks: {BUILD_HINT}; "
            "paper tasks read the Hub (network, or a pre-filled HF_DATASETS_CACHE; `huggingface-cli login` "
            "and the dataset's terms accepted for gated ones) or a local mirror (task_data)."
        ) from err


def evaluate_tasks(
    model: Any,
    tokenizer: Any,
    tasks: Sequence[str],
    batch_size: int | str = 8,
    limit: int | float | None = None,
    include_path: Path | str | None = TASKS_DIR,
    max_length: int | None = None,
    log_samples: bool = False,
    task_data: Path | str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate ``model`` (in memory, e.g. just pruned) on lm-eval ``tasks``.

    Names are checked and the task data loaded before the model is touched, so a typo or a
    missing file fails in seconds. ``task_data``: a local mirror of lm-eval's Hub datasets
    (:func:`mirror_overlay`); ``progress``: lm-eval's progress bars. Returns ``{"rows": [...],
    "versions": {...}, "config": {...}}`` with one row per task: benchmark, lang, n, acc,
    acc_stderr, acc_norm, acc_norm_stderr, version (plus ``"samples"`` when ``log_samples``).
    """
    import lm_eval

    manager, loaded = load_tasks(tasks, include_path, task_data)
    with quiet_lm_eval_notes() as notes:
        lm = hflm(model, tokenizer, batch_size, max_length, progress)
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
            "task_data": str(task_data) if task_data else None,
            "truncated_items": notes.truncated,  # lm-eval cut their context from the left to fit
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
