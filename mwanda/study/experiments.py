"""Experiments: one config in, one cached JSON record out (the runner and its evaluation).

A config (``study.config``, made from a profile by ``study.profiles``) names the model, method,
every hyperparameter, the calibration and the evaluation suite; its record (``study.records``)
lives under ``results/`` at the config's key. ``run`` reuses a valid record (``force=True``
recomputes), else prunes, evaluates and writes one atomically.

    from mwanda.study import experiments
    rec = experiments.run(experiments.make_config("embedded", method="mwanda", sparsity=0.5))

Within one process the dense model, calibration set and evaluation texts are cached, so a
notebook that runs a grid loads and tokenizes them once.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import io
import json
import os
import time
from dataclasses import asdict
from pathlib import Path

import torch

from mwanda import data, hub_data
from mwanda.core.calibration import CalibrationSet, balanced_windows, token_ids
from mwanda.core.config import ConfigError
from mwanda.core.memory import AUTO_BATCH_MAX, auto_batch_size
from mwanda.core.models import resolve_model
from mwanda.core.prune import needs_data
from mwanda.io import atomic_write_bytes, atomic_write_text
from mwanda.study.config import (
    METHODS,
    NOT_IN_KEY,
    REPO_ROOT,
    SCORING_VERSION,
    TUPLE_FIELDS,
    V1_KEYS,
    ExperimentConfig,
    model_fingerprint,
    task_data_dir,
    task_list,
    validate,
)
from mwanda.study.profiles import PROFILES_FILE, load_config, make_config, naming_file, profiles, read_yaml
from mwanda.study.records import (
    RESULTS_DIR,
    RecordError,
    RecordWarning,
    check_results_dir,
    read_record,
    record_path,
    record_problem,
)
from mwanda.study.shipped import find_record

# The study's one entry point for notebooks: the runner's own names and those of the config,
# profiles and records it is built on.
__all__ = [
    "METHODS",
    "NOT_IN_KEY",
    "PROFILES_FILE",
    "REPO_ROOT",
    "RESULTS_DIR",
    "SCORING_VERSION",
    "TUPLE_FIELDS",
    "V1_KEYS",
    "ExperimentConfig",
    "RecordError",
    "RecordWarning",
    "calibration_set",
    "check_results_dir",
    "check_tokenizer",
    "default_progress",
    "dense_model",
    "dense_statistics",
    "evaluate",
    "evaluation_texts",
    "find_record",
    "load_config",
    "make_config",
    "model_fingerprint",
    "naming_file",
    "profiles",
    "read_record",
    "read_yaml",
    "record_path",
    "record_problem",
    "resolve_batch_size",
    "run",
    "statistics_key",
    "summarize",
    "task_data_dir",
    "task_list",
    "validate",
]


RECORD_LOG = "MWANDA_RECORD_LOG"  # the environment variable naming run()'s record log


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
    cached = None if force else find_record(cfg, results_dir, on_damage="recomputing it")
    if cached is not None:
        _log_record(cfg, "cached" if path.exists() else "shipped")
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
    _log_record(cfg, "computed")
    if progress:
        print(f"record: {path}\n{summarize(record)}")
    return record


def _log_record(cfg: ExperimentConfig, source: str) -> None:
    """Append "<key>\t<source>" to the file ``$MWANDA_RECORD_LOG`` names, if any: `make figures`
    learns which notebook read which records and which it had to compute (``reproduce.status``).
    One short line per write in append mode, so parallel jobs never interleave within a line."""
    log = os.environ.get(RECORD_LOG)
    if log:
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(f"{cfg.key()}\t{source}\n")


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
    return tuple((lang, hub_data.load_hub_text(dataset, lang, "calib", chars, revision)) for lang in langs)


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
        return tuple(
            (lang, hub_data.load_hub_text(dataset, lang, split, max_chars, revision)) for lang in langs
        )
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
