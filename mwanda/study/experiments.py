"""Experiments: one config in, one cached JSON record out.

A config names the model, profile, method and every hyperparameter, sparsity and structure,
calibration languages and size, seed and evaluation suite. Its record lives under ``results/``
at a key hashed from the normalized config plus ``SCORING_VERSION``; running the same config
again reuses the record (``force=True`` recomputes). Records are written atomically, so a crash
never loses or corrupts earlier ones, and writers of different configs never touch the same file.
Every reader goes through ``read_record``, which checks a record's schema: a damaged file (a copy
cut short, a hand edit) is recomputed by ``run``, pending for a sweep and skipped by ``results``.

    from mwanda.study import experiments
    rec = experiments.run(experiments.make_config("embedded", method="mwanda", sparsity=0.5))

Within one process the dense model, calibration set and evaluation texts are cached, so a
notebook that runs a grid loads and tokenizes them once.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import io
import json
import os
import time
import typing
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import torch
import yaml

from mwanda import data
from mwanda.core import gguf
from mwanda.core.calibration import CalibrationSet, balanced_windows, token_ids
from mwanda.core.config import METHODS as PRUNE_METHODS
from mwanda.core.config import ConfigError, PruneConfig, check_types, param
from mwanda.core.models import ModelLoadError, check_model, model_candidates, resolve_model
from mwanda.core.prune import AUTO_BATCH_MAX, auto_batch_size, needs_data
from mwanda.errors import MwandaWarning, UserError
from mwanda.io import atomic_write_bytes, atomic_write_text

REPO_ROOT = data.REPO_ROOT
RESULTS_DIR = REPO_ROOT / "results"
PROFILES_FILE = Path(__file__).with_name("profiles.yaml")
# Bump when scores, masks, calibration sampling or evaluation change: old records stop matching.
SCORING_VERSION = "2"  # 2: cross-entropy over contiguous rows (bits per byte move by up to ~1e-6)
METHODS = ("dense", *PRUNE_METHODS)
# Fields that do not change a result (up to float noise), left out of the record key.
NOT_IN_KEY = ("batch_size", "device")


# The fields that every record key holds (since SCORING_VERSION 1). A field added later (include, exclude,
# the Hub revisions, ...) is left out of the key while it is at its default, so old records stay
# valid and a new field needs no edit here.
V1_KEYS = frozenset(
    [
        "method",
        "sparsity",
        "structure",
        "comparison",
        "allocation",
        "alpha",
        "beta",
        "variation",
        "language_aware",
        "ria_a",
        "owl_m",
        "owl_lambda",
        "sequential",
        "seed",
        "profile",
        "model",
        "corpus",
        "calib_dataset",
        "eval_dataset",
        "dtype",
        "device",
        "calib_langs",
        "eval_langs",
        "nsamples",
        "seqlen",
        "eval_split",
        "eval_max_chars",
        "eval_window",
        "udhr",
        "tasks",
        "task_limit",
        "batch_size",
    ]
)


@dataclass(frozen=True)
class ExperimentConfig(PruneConfig):
    """Everything that decides one record: every PruneConfig hyperparameter (inherited, so each
    is declared once, in ``mwanda.core.config``) plus the model, data and evaluation. Defaults are
    the embedded profile's (profiles.yaml)."""

    # the one pruning field that differs: "dense" (no pruning) is the baseline of every method
    method: str = param("wanda", "pruning method, or dense for the unpruned baseline", choices=METHODS)
    profile: str = "embedded"
    model: str = "data/models/tiny-ml-llama"
    corpus: str = "embedded"  # "embedded" (data/corpus) or "hub" (Hugging Face datasets)
    calib_dataset: str | None = None  # hub corpus: calibration dataset id
    eval_dataset: str | None = None  # hub corpus: evaluation dataset id (FLORES+)
    # Hub revisions (branch, tag or commit) of the model and datasets; a Hub model's key holds the
    # commit its revision resolves to, so new weights under the same name never reuse old records.
    model_revision: str | None = None
    calib_revision: str | None = None
    eval_revision: str | None = None
    dtype: str = "float32"
    device: str = "cpu"
    calib_langs: tuple[str, ...] = ()
    eval_langs: tuple[str, ...] = ()
    nsamples: int = 128
    seqlen: int = 256
    eval_split: str = "test"
    eval_max_chars: int | None = 5000
    # which paragraphs (data.EVAL_SAMPLES): "first" in id order, "pages" spread over every help page
    eval_sample: str = "first"
    eval_window: int | None = None  # perplexity window; None: the model's context, at most 2048
    udhr: bool = True
    tasks: tuple[str, ...] = ()
    task_limit: int | None = None
    # a local mirror of the lm-eval tasks' Hub datasets (<folder>/facebook/xnli, ...); None: the Hub
    task_data: str | None = None
    # sequences per forward pass (pruning) and windows per pass (evaluation); "auto": the largest
    # batch whose activations fit a quarter of free memory (up to 8), lm-eval's own search on CUDA
    batch_size: int | typing.Literal["auto"] = 16

    def __post_init__(self) -> None:
        """No checks here (``validate`` does them, with the file's name); lists become tuples."""
        for f in fields(self):
            if isinstance(getattr(self, f.name), list):
                object.__setattr__(self, f.name, tuple(getattr(self, f.name)))

    def prune_config(self) -> PruneConfig | None:
        """The PruneConfig of this experiment (None for the dense baseline); validates it."""
        if self.method == "dense":
            return None
        names = {f.name for f in fields(PruneConfig)}
        return PruneConfig(**{k: v for k, v in asdict(self).items() if k in names})

    def normalized(self) -> dict:
        """The fields that decide the result; pruning fields are dropped for the dense baseline."""
        d = {k: v for k, v in asdict(self).items() if k not in NOT_IN_KEY}
        for f in fields(self):
            if f.name not in V1_KEYS and f.name in d and d[f.name] == f.default:
                del d[f.name]
        # new weights at the same path (or a new commit under the same Hub name): new records
        d["model_sha256"] = model_fingerprint(self.model, self.model_revision)
        if self.method == "dense":
            for f in fields(PruneConfig):
                d.pop(f.name, None)
            for k in ("calib_langs", "nsamples", "seqlen", "calib_dataset", "calib_revision"):
                d.pop(k, None)
            d["method"] = "dense"
        elif not needs_data(self):
            for k in ("calib_langs", "nsamples", "seqlen", "seed", "calib_dataset", "calib_revision"):
                d.pop(k, None)  # e.g. uniform magnitude pruning reads no calibration data
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    def key(self) -> str:
        blob = json.dumps({"config": self.normalized(), "version": SCORING_VERSION}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:20]

    def dense(self) -> ExperimentConfig:
        """The dense baseline evaluated exactly like this config."""
        return replace(self, method="dense")


# ExperimentConfig fields that hold a tuple: YAML and JSON give lists, the frozen config keeps tuples.
TUPLE_FIELDS = tuple(
    name for name, tp in typing.get_type_hints(ExperimentConfig).items() if typing.get_origin(tp) is tuple
)


def model_fingerprint(model: str, revision: str | None = None) -> str:
    """SHA-256 over a local model directory's config and weight files, or for a Hub id the commit
    its ``revision`` resolves to (from the local cache offline, else asked of the Hub). The
    directory is the one ``resolve_model`` gives the loader, so the hash covers the weights
    evaluated whatever the working directory; a missing local path raises ModelLoadError rather
    than falling back to the Hub. A model converted from GGUF keys on the GGUF file's SHA-256."""
    if gguf.is_gguf_name(model):  # the GGUF's own hash: nothing converted, no package needed
        return gguf.fingerprint(model, model_candidates(model))
    source = resolve_model(model)
    if not isinstance(source, Path):
        return _hub_commit(source, revision)
    files = [source / "config.json", *sorted(source.glob("*.safetensors")), *sorted(source.glob("*.bin"))]
    files = [f for f in files if f.exists()]
    stamp = tuple((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files)
    return _files_sha256(tuple(files), stamp)


@functools.lru_cache(maxsize=16)
def _hub_commit(repo_id: str, revision: str | None) -> str:
    """Cached per process: a sweep resolves its model's revision once."""
    from mwanda.core.models import hub_revision

    return hub_revision(repo_id, revision)


@functools.lru_cache(maxsize=16)
def _files_sha256(files: tuple[Path, ...], stamp: tuple) -> str:
    """Cached per process on the files' sizes and times (``stamp``): hashing 16 MB takes
    milliseconds, 16 GB a minute, and new weights saved at the same path are hashed again."""
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode())
        with f.open("rb") as fh:
            for chunk in iter(lambda fh=fh: fh.read(1 << 24), b""):
                h.update(chunk)
    return h.hexdigest()


def profiles() -> dict[str, dict]:
    return yaml.safe_load(PROFILES_FILE.read_text(encoding="utf-8"))


def make_config(profile: str = "embedded", **overrides) -> ExperimentConfig:
    """A profile's settings with ``overrides``; unknown keys and values fail here, with the fix.

    ``profile`` names a profile of ``profiles.yaml`` or is a YAML file (``*.yaml``) that
    ``extends:`` one and overrides any keys: a mirror of the Hub, a cluster's paths, a test's
    stand-ins. Relative paths in it resolve like the built-in profiles' (repository root first).
    """
    base = _profile_values(profile)
    valid = {f.name for f in fields(ExperimentConfig)}
    unknown = sorted(set(overrides) - valid)
    if unknown:
        raise ConfigError(f"unknown config key(s) {unknown}; valid keys: {', '.join(sorted(valid))}.")
    values = {**base, **overrides, "profile": profile}
    if values.get("calib_langs") in ("calib", "heldout"):
        values["calib_langs"] = data.languages(values["calib_langs"])
    for k in TUPLE_FIELDS:
        values[k] = _as_tuple(values.get(k))
    cfg = ExperimentConfig(**values)
    validate(cfg)
    return cfg


def _profile_values(profile: str) -> dict:
    """The settings of a built-in profile, or of a profile file over the profile it extends."""
    table = profiles()
    if isinstance(profile, str) and profile in table:
        return dict(table[profile])
    if not isinstance(profile, str) or Path(profile).suffix not in (".yaml", ".yml"):
        raise ConfigError(
            f"unknown profile {profile!r}; choose one of {', '.join(table)}, or a profile file "
            "(*.yaml) with `extends: <profile>`."
        )
    path = _repo_first(profile, Path.is_file) or Path(profile)
    raw = _read_yaml(path)
    parent = raw.pop("extends", None)
    if parent not in table:
        raise ConfigError(f"{path}: `extends: {parent}` must name one of the profiles {', '.join(table)}.")
    keys = {f.name for f in fields(ExperimentConfig)} - {"profile"}  # the file is the profile
    unknown = sorted(set(raw) - keys)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {unknown}; it holds `extends` and config keys.")
    return {**table[parent], **raw}


def _as_tuple(value: object) -> object:
    """A list (YAML, JSON) or one string as a tuple, nothing as (); any other value is left for
    ``check_types`` to report with the key's type, rather than split or failing here."""
    if value is None or value == []:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(value) if isinstance(value, list) else value


def load_config(path: str | Path) -> ExperimentConfig:
    """A YAML config file: ``profile:`` plus any ExperimentConfig keys."""
    raw = _read_yaml(path)
    with naming_file(path):
        return make_config(raw.pop("profile", "embedded"), **raw)


@contextlib.contextmanager
def naming_file(path: str | Path) -> Iterator[None]:
    """Prefix config and model errors raised inside with ``path``: the file the user must fix."""
    try:
        yield
    except (ConfigError, ModelLoadError) as err:
        raise type(err)(f"{path}: {err}") from None


def _read_yaml(path: str | Path) -> dict:
    """The mapping in YAML file ``path``; syntax errors name the file, line and column."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist; check the path.")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ConfigError(
            f"{_yaml_where(path, err)}: invalid YAML ({_yaml_problem(err)}); fix it there."
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text; save it as UTF-8.") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must be a YAML mapping of config keys to values.")
    bad = [k for k in raw if not isinstance(k, str)]
    if bad:
        raise ConfigError(f"{path}: key(s) {bad} are not names; keys are config field names.")
    return raw


def _yaml_where(path: Path, err: yaml.YAMLError) -> str:
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    return f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark else str(path)


def _yaml_problem(err: yaml.YAMLError) -> str:
    parts = [getattr(err, "context", None), getattr(err, "problem", None)]
    return ": ".join(p for p in parts if p) or str(err).splitlines()[0]


def validate(cfg: ExperimentConfig) -> None:
    """Every check that needs no model weights: types first (YAML gives strings for typos, and
    comparing one with a number would be a TypeError), then methods, languages, splits, tasks,
    sizes, and that a local model directory exists."""
    check_types(cfg)
    if cfg.method not in METHODS:
        raise ConfigError(f"method={cfg.method!r} is not supported; choose one of {', '.join(METHODS)}.")
    prune_cfg = cfg.prune_config()  # PruneConfig validates sparsity, structure, hyperparameters
    if prune_cfg is not None and needs_data(prune_cfg) and not cfg.calib_langs:
        raise ConfigError("calib_langs is empty; name the calibration languages.")
    if not cfg.eval_langs:
        raise ConfigError("eval_langs is empty; name at least one evaluation language.")
    if cfg.corpus == "embedded":
        known = set(data.languages())
        bad = sorted(set(cfg.eval_langs) - known)
        if bad:
            raise ConfigError(
                f"eval_langs has unknown language(s) {bad}; the embedded corpus has {sorted(known)}."
            )
        _check_udhr_calibration([lang for lang in cfg.calib_langs if lang not in known], known)
        if cfg.eval_split not in ("dev", "test"):
            raise ConfigError(f"eval_split={cfg.eval_split!r}: use 'dev' (tuning) or 'test' (reporting).")
        if cfg.eval_sample not in data.EVAL_SAMPLES:
            raise ConfigError(f"eval_sample={cfg.eval_sample!r}: use one of {', '.join(data.EVAL_SAMPLES)}.")
    elif cfg.corpus == "hub":
        if not cfg.calib_dataset or not cfg.eval_dataset:
            raise ConfigError("corpus='hub' needs calib_dataset and eval_dataset (Hub dataset ids).")
    else:
        raise ConfigError(f"corpus={cfg.corpus!r}: use 'embedded' or 'hub'.")
    if cfg.nsamples < 1 or cfg.seqlen < 2:
        raise ConfigError("nsamples must be >= 1 and seqlen >= 2.")
    if cfg.batch_size != "auto" and cfg.batch_size < 1:
        raise ConfigError(f"batch_size={cfg.batch_size!r}: use a positive integer or 'auto'.")
    if cfg.tasks:
        from mwanda.evaluation import tasks as task_mod

        task_mod.check_tasks(task_list(cfg))
    if cfg.task_data is not None and task_data_dir(cfg) is None:
        raise ConfigError(f"task_data={cfg.task_data!r} is not a folder; name the tasks' datasets' folder.")
    check_model(cfg.model)  # a missing local directory fails now, never as a Hub lookup later


def _check_udhr_calibration(tags: list[str], known: set[str]) -> None:
    """Calibration languages outside the embedded corpus must be UDHR declarations of languages
    the model never saw (issue 12): their text is the declaration itself."""
    if not tags:
        return
    from mwanda import udhr

    try:
        udhr.check_unseen(tags)
    except data.DataError as err:
        raise ConfigError(
            f"calib_langs: {err}. Calibration languages are the embedded corpus's {sorted(known)} or tags of "
            "mwanda.udhr.udhr_table() for languages the model never saw."
        ) from None


def task_data_dir(cfg: ExperimentConfig) -> Path | None:
    """The folder ``task_data`` names (repository root first, like models), or None."""
    if cfg.task_data is None:
        return None
    found = _repo_first(cfg.task_data, Path.is_dir)
    return found.resolve() if found else None


def _repo_first(text: str, exists) -> Path | None:
    """``text`` as a path under the repository root, else as given (relative to the working
    directory), whichever ``exists(path)`` first; None if neither. Models resolve the same way
    (``resolve_model``), so every path in a profile reads alike."""
    return next((p for p in (REPO_ROOT / text, Path(text)) if exists(p)), None)


def task_list(cfg: ExperimentConfig) -> list[str]:
    """lm-eval task names of the config's benchmarks (``proxy_continuation``, ``xnli``, ...) for
    the evaluation languages each benchmark covers (xcopa, say, has only a few)."""
    from mwanda.evaluation import tasks as task_mod

    table = task_mod.task_table()
    names = []
    for bench in cfg.tasks:
        if bench not in table:
            known = ", ".join(sorted(table))
            raise ConfigError(f"unknown benchmark {bench!r}; known: {known} (data/task_table.yaml).")
        langs = [lang for lang in cfg.eval_langs if lang in table[bench]]
        if not langs:
            raise ConfigError(f"benchmark {bench!r} covers none of eval_langs {list(cfg.eval_langs)}.")
        names += task_mod.task_names(bench, langs)
    return names


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


def read_record(path: str | Path, on_damage: str | None = None) -> dict | None:
    """The record stored at ``path``, or None if there is none. A damaged file raises
    RecordError, or, given ``on_damage`` (what the caller does instead), warns once with a
    RecordWarning naming the file and returns None: so no reader trusts or crashes on half a
    record, and the one bad file does not stop a sweep or a notebook."""
    path = Path(path)
    try:
        rec = _parse_record(path)
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


def default_progress() -> bool:
    """Progress bars and a line per record, unless ``TQDM_DISABLE`` is set (tqdm's own switch,
    which silences the bars of the libraries too): `make figures` sets it, so an executed notebook
    holds its results rather than thousands of bar updates."""
    return not os.environ.get("TQDM_DISABLE")  # tqdm reads any non-empty value as "disable"


def run(
    cfg: ExperimentConfig,
    force: bool = False,
    results_dir: str | Path = RESULTS_DIR,
    progress: bool | None = None,
) -> dict:
    """Compute (or reuse) the record of ``cfg`` and return it (``progress``: None follows
    :func:`default_progress`)."""
    progress = default_progress() if progress is None else progress
    validate(cfg)
    path = record_path(cfg, check_results_dir(results_dir))
    cached = None if force else read_record(path, on_damage="recomputing it")
    if cached is not None:
        return cached
    start = time.perf_counter()
    _eval_texts(cfg, cfg.eval_split)  # a missing dataset fails here, before the model is loaded
    if cfg.method != "dense" and needs_data(cfg):
        _calib_texts(_calib_source(cfg), cfg.calib_langs, cfg.nsamples, cfg.seqlen)
    if cfg.tasks and cfg.corpus == "hub":  # so do the paper tasks' data (local proxy files are checked later)
        from mwanda.evaluation import tasks as task_mod

        task_mod.load_tasks(task_list(cfg), task_data=task_data_dir(cfg))
    model, tokenizer = _dense_model(cfg.model, cfg.dtype, cfg.device, cfg.model_revision)
    check_tokenizer(tokenizer, model)
    pruning = None
    if cfg.method != "dense":
        from mwanda.core.prune import prune_model

        model = copy.deepcopy(model)
        calib = _calibration(cfg) if needs_data(cfg) else None
        batch_size = resolve_batch_size(cfg.batch_size, model, cfg.nsamples, cfg.seqlen)
        report = prune_model(model, calib, cfg.prune_config(), batch_size=batch_size, progress=progress)
        pruning = _pruning_summary(report)
    rows, task_info, paragraphs = evaluate(model, tokenizer, cfg, progress)
    record = {
        "key": cfg.key(),
        "version": SCORING_VERSION,
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()},
        "metrics": rows,
        "paragraphs": paragraphs,
        "pruning": pruning,
        "provenance": _provenance(task_info),
        "seconds": time.perf_counter() - start,
    }
    atomic_write_text(path, json.dumps(record, indent=1) + "\n")
    if progress:
        print(f"record: {path}\n{summarize(record)}")
    return record


def evaluate(model, tokenizer, cfg: ExperimentConfig, progress: bool = True) -> tuple[list[dict], dict, dict]:
    """Tidy metric rows {language, metric, value} for the evaluation suite of ``cfg``; the tasks'
    provenance: lm-eval task versions and how many items were truncated to the context; and the
    paragraphs behind each bits-per-byte row, {metric: {language: {"nll": [...], "bytes":
    [...]}}}, which the bootstrap of ``study.uncertainty`` resamples (empty for a tokenizer
    without character offsets)."""
    from mwanda.evaluation.perplexity import context_length, per_language_perplexity

    rows, paragraphs = [], {}
    suites = [(cfg.eval_split, _eval_texts(cfg, cfg.eval_split))]
    if cfg.udhr and cfg.corpus == "embedded":
        suites.append(("udhr", _eval_texts(cfg, "udhr")))
    context = min(context_length(model), 2048)
    window = cfg.eval_window or context
    batch_size = resolve_batch_size(cfg.batch_size, model, AUTO_BATCH_MAX, window)
    for name, texts in suites:
        res = per_language_perplexity(model, tokenizer, texts, window, None, batch_size, progress)
        prefix = "" if name == cfg.eval_split else f"{name}_"
        for lang, r in res.items():
            rows += [
                {"language": lang, "metric": f"{prefix}{m}", "value": v}
                for m, v in (("bpb", r.bits_per_byte), ("ppl", r.ppl), ("bpc", r.bits_per_char))
            ]
            if r.paragraph_nll:
                parts = {"nll": list(r.paragraph_nll), "bytes": list(r.paragraph_bytes)}
                paragraphs.setdefault(f"{prefix}bpb", {})[lang] = parts
    task_info: dict = {"versions": {}}
    if cfg.tasks:
        from mwanda.evaluation import tasks as task_mod

        # lm-eval scores items of up to the model's context, whatever eval_window is
        task_batch = resolve_batch_size(cfg.batch_size, model, AUTO_BATCH_MAX, context)
        batch_size = task_mod.lm_eval_batch_size(model, task_batch)
        names, mirror = task_list(cfg), task_data_dir(cfg)
        out = task_mod.evaluate_tasks(
            model, tokenizer, names, batch_size, cfg.task_limit, task_data=mirror, progress=progress
        )
        for r in out["rows"]:
            rows += [
                {"language": r["lang"], "metric": f"{r['benchmark']}_{m}", "value": r[m]}
                for m in ("acc", "acc_norm")
                if r.get(m) is not None
            ]
        task_info = {"versions": out["versions"], "truncated_items": out["config"]["truncated_items"]}
    return rows, task_info, paragraphs


def resolve_batch_size(batch_size: int | str, model, nsamples: int, seqlen: int) -> int:
    """``batch_size`` as a number: "auto" becomes the largest batch of ``seqlen``-token sequences
    (up to min(nsamples, 8)) whose activations fit a quarter of the free memory. Masks do not
    depend on it (tested), and evaluation only up to float rounding."""
    return auto_batch_size(model, nsamples, seqlen) if batch_size == "auto" else int(batch_size)


def summarize(record: dict) -> str:
    """One line: method, sparsity, mean bits per byte over languages, seconds."""
    c = record["config"]
    bpb = [r["value"] for r in record["metrics"] if r["metric"] == "bpb"]
    spars = "" if record["pruning"] is None else f" achieved {record['pruning']['achieved_sparsity']:.4f}"
    return (
        f"{c['method']} s={c['sparsity']} {c['structure']} {c['allocation']}{spars}: mean bpb "
        f"{sum(bpb) / len(bpb):.4f} over {len(bpb)} languages ({record['seconds']:.1f}s)"
    )


def check_tokenizer(tokenizer, model) -> None:
    """The tokenizer must fit the model: every token id inside its embedding table."""
    if tokenizer is None:
        raise ConfigError("the model directory has no tokenizer; save one next to the model.")
    vocab = model.get_input_embeddings().weight.shape[0]
    if len(tokenizer) > vocab:
        raise ConfigError(
            f"the tokenizer has {len(tokenizer)} tokens but the model's vocabulary is {vocab}: they do not "
            "belong together; load the tokenizer saved with this model."
        )


def dense_model(cfg: ExperimentConfig):
    """(model, tokenizer) of ``cfg``, loaded once per process. Do not modify: deepcopy first."""
    return _dense_model(cfg.model, cfg.dtype, cfg.device, cfg.model_revision)


def calibration_set(cfg: ExperimentConfig) -> CalibrationSet:
    """The calibration set of ``cfg`` (cached per process)."""
    return _calibration(cfg)


def statistics_key(cfg: ExperimentConfig) -> str:
    """What decides the dense statistics of ``cfg``: model, calibration data, dtype and batching."""
    fields = ("corpus", "calib_dataset", "calib_revision", "calib_langs", "nsamples", "seqlen", "seed")
    spec = {k: getattr(cfg, k) for k in (*fields, "dtype", "batch_size")}
    spec |= {"model_sha256": model_fingerprint(cfg.model, cfg.model_revision), "version": SCORING_VERSION}
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=list).encode()).hexdigest()[:20]


def dense_statistics(cfg: ExperimentConfig, results_dir: str | Path = RESULTS_DIR):
    """``analysis.dense_statistics`` of ``cfg``'s dense model and calibration set (notebooks 02
    and 03): computed once, then read from ``<results_dir>/dense_statistics/<key>.pt``."""
    from mwanda.study import analysis

    path = check_results_dir(results_dir) / "dense_statistics" / f"{statistics_key(cfg)}.pt"
    if path.exists():
        return analysis.statistics_from_state(torch.load(path, weights_only=True))
    model, _ = dense_model(cfg)
    stats = analysis.dense_statistics(model, calibration_set(cfg), batch_size=cfg.batch_size)
    buffer = io.BytesIO()
    torch.save(analysis.statistics_state(stats), buffer)
    atomic_write_bytes(path, buffer.getvalue())
    return stats


def _dense_model(name: str, dtype: str, device: str, revision: str | None = None):
    """Resolved like ``model_fingerprint``, and cached on the resolved directory: the weights
    loaded are the ones hashed into the key, even after the working directory changes."""
    return _load_dense(resolve_model(name), dtype, device, revision)


@functools.lru_cache(maxsize=2)
def _load_dense(source: Path | str, dtype: str, device: str, revision: str | None = None):
    import transformers

    from mwanda.core.models import load_model

    bars = transformers.utils.logging.is_progress_bar_enabled()
    if not default_progress():  # transformers' "Loading weights" bar ignores TQDM_DISABLE
        transformers.utils.logging.disable_progress_bar()
    try:
        return load_model(source, dtype=dtype, device=device, revision=revision)
    finally:
        if bars:
            transformers.utils.logging.enable_progress_bar()


def _calibration(cfg: ExperimentConfig) -> CalibrationSet:
    model = (resolve_model(cfg.model), cfg.dtype, cfg.device, cfg.model_revision)
    return _calibration_cached(model, _calib_source(cfg), cfg.calib_langs, cfg.nsamples, cfg.seqlen, cfg.seed)


def _calib_source(cfg: ExperimentConfig) -> tuple:
    return (cfg.corpus, cfg.calib_dataset, cfg.calib_revision)


@functools.lru_cache(maxsize=4)
def _calibration_cached(model: tuple, source: tuple, langs, nsamples, seqlen, seed) -> CalibrationSet:
    """``model``: (source, dtype, device, revision); ``source``: (corpus, dataset, revision)."""
    texts = dict(_calib_texts(source, langs, nsamples, seqlen))
    ids = {lang: _token_ids(model, text) for lang, text in texts.items()}
    return balanced_windows(ids, nsamples, seqlen, seed)  # the windows of build_balanced(texts, ...)


@functools.lru_cache(maxsize=512)
def _token_ids(model: tuple, text: str):
    """A calibration text tokenized once per process: grids calibrate on the same languages with
    many seeds and subsets (08's transfer map: 20 subsets of 30 languages)."""
    _, tokenizer = _dense_model(*model)
    return token_ids(tokenizer, text)


@functools.lru_cache(maxsize=4)
def _calib_texts(source: tuple, langs, nsamples, seqlen) -> tuple[tuple[str, str], ...]:
    """Calibration text per language. Hub text: enough for nsamples windows per language,
    streamed, in the dataset's own schema (CulturaX: ISO 639-1 configs, 'train', 'text')."""
    corpus, dataset, revision = source
    if corpus == "embedded":  # a language outside the corpus is a UDHR declaration (validate checks it)
        from mwanda import udhr

        return tuple(udhr.calibration_texts(langs).items())
    chars = seqlen * 16 * max(1, nsamples // len(langs))
    return tuple((lang, data.load_hub_text(dataset, lang, "calib", chars, revision)) for lang in langs)


def evaluation_texts(cfg: ExperimentConfig, split: str | None = None) -> dict[str, str]:
    """Each evaluation language's text of ``split`` (default: ``cfg.eval_split``), as records
    measure it (cached per process)."""
    return _eval_texts(cfg, split or cfg.eval_split)


def _eval_texts(cfg: ExperimentConfig, split: str) -> dict[str, str]:
    source = (cfg.corpus, cfg.eval_dataset, cfg.eval_revision)
    return dict(_eval_texts_cached(source, split, cfg.eval_langs, cfg.eval_max_chars, cfg.eval_sample))


@functools.lru_cache(maxsize=8)
def _eval_texts_cached(
    source: tuple, split, langs, max_chars, sample: str = "first"
) -> tuple[tuple[str, str], ...]:
    """``source``: (corpus, dataset, revision). Hub text is read in the dataset's own schema:
    FLORES+ configs by ISO 639-3 + script, 'test' as its 'devtest' split, the 'text' field."""
    corpus, dataset, revision = source
    if corpus == "hub":
        return tuple((lang, data.load_hub_text(dataset, lang, split, max_chars, revision)) for lang in langs)
    return tuple(data.parallel_text(langs, split, max_chars, sample).items())


def _pruning_summary(report) -> dict:
    return {
        "achieved_sparsity": report.achieved_sparsity,
        "mask_sha256": report.mask_sha256,
        "blocks": report.blocks,
        "timings": report.timings,
        "calibration": report.calibration,
    }


def _provenance(task_info: dict) -> dict:
    import importlib.metadata as md

    from mwanda.core.report import environment_info

    env = environment_info()
    for pkg in ("lm_eval", "datasets", "tokenizers"):
        try:
            env[pkg] = md.version(pkg.replace("_", "-"))
        except md.PackageNotFoundError:
            env[pkg] = None
    manifest = data.CORPUS_DIR / data.MANIFEST_NAME
    env["corpus_manifest_sha256"] = data.sha256_file(manifest) if manifest.exists() else None
    env["task_versions"] = task_info["versions"]
    if "truncated_items" in task_info:  # lm-eval cut these items' context from the left to fit
        env["task_truncated_items"] = task_info["truncated_items"]
    return env
