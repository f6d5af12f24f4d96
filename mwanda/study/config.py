"""The experiment config: what decides one record, its checks and its key.

``ExperimentConfig`` holds every ``PruneConfig`` hyperparameter (declared once, in
``mwanda.core.config``) plus the model, data and evaluation. ``validate`` runs every check that
needs no weights; ``key()`` hashes the normalized config, the model's fingerprint and
``SCORING_VERSION``, so a record is reused only for the same model, data and scoring.
"""

from __future__ import annotations

import functools
import hashlib
import json
import typing
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from mwanda import data
from mwanda.core import gguf
from mwanda.core.config import METHODS as PRUNE_METHODS
from mwanda.core.config import ConfigError, PruneConfig, check_types, param
from mwanda.core.models import check_model, model_candidates, resolve_model
from mwanda.core.prune import needs_data

REPO_ROOT = data.REPO_ROOT
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
        from mwanda.core.models import hub_revision

        return hub_revision(source, revision)
    files = [source / "config.json", *sorted(source.glob("*.safetensors")), *sorted(source.glob("*.bin"))]
    files = [f for f in files if f.exists()]
    stamp = tuple((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files)
    return _files_sha256(tuple(files), stamp)


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
    the model never saw (notebook 08): their text is the declaration itself."""
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
    found = repo_first(cfg.task_data, Path.is_dir)
    return found.resolve() if found else None


def repo_first(text: str, exists) -> Path | None:
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
