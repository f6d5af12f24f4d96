"""Command line: ``mwanda prune|run|sweep ...`` (also ``python -m mwanda ...``).

Every input is checked before the model is loaded, so a typo costs seconds, not a prune.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mwanda.config import ALLOCATIONS, METHODS, STRUCTURES, VARIATIONS, ConfigError, PruneConfig

DTYPES = ("float32", "float16", "bfloat16", "auto")


def _add_prune_args(p: argparse.ArgumentParser) -> None:
    d = PruneConfig()
    p.add_argument("--model", required=True, help="local path or Hugging Face Hub id")
    p.add_argument("--method", choices=METHODS, default=d.method)
    p.add_argument("--sparsity", type=float, default=d.sparsity, help="fraction of weights pruned, in [0, 1)")
    p.add_argument("--structure", default=d.structure, help=f"one of {', '.join(STRUCTURES)} (any N:M works)")
    p.add_argument("--comparison", choices=("row", "layer"), default=d.comparison)
    p.add_argument("--allocation", choices=ALLOCATIONS, default=d.allocation)
    p.add_argument("--alpha", type=float, default=d.alpha, help="M-Wanda: weight of cross-lingual variation")
    p.add_argument("--beta", type=float, default=d.beta, help="M-Wanda: weight of FFN activation probability")
    p.add_argument("--lambda", dest="owl_lambda", type=float, default=d.owl_lambda, help="OWL/CWL spread")
    p.add_argument("--owl-m", type=float, default=d.owl_m, help="OWL outlier threshold M")
    p.add_argument("--variation", choices=VARIATIONS, default=d.variation)
    p.add_argument("--ria-a", type=float, default=d.ria_a, help="RIA activation exponent")
    p.add_argument("--language-aware", action="store_true", help="RIA with M-Wanda's activation term")
    p.add_argument(
        "--no-sequential", dest="sequential", action="store_false", help="dense statistics for all blocks"
    )
    p.add_argument("--include", nargs="*", default=[], help="fnmatch patterns of linear names to prune")
    p.add_argument("--exclude", nargs="*", default=[], help="fnmatch patterns of linear names to keep")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--calib-tokens", type=Path, help='JSONL: {"lang": .., "input_ids": [..]} per line')
    src.add_argument("--calib-text", type=Path, help='JSONL: {"lang": .., "text": ..} per line')
    p.add_argument("--nsamples", type=int, default=128, help="with --calib-text: sequences in all")
    p.add_argument("--seqlen", type=int, default=256, help="with --calib-text: tokens per sequence")
    p.add_argument("--save-calib", type=Path, help="write the calibration tokens used to this JSONL")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", choices=DTYPES, default="float32")
    p.add_argument("--device", default="auto", help="'cpu', 'cuda' or 'auto' (device_map='auto' on GPUs)")
    p.add_argument(
        "--batch-size",
        type=int,
        default=1,
        help="calibration sequences per forward pass: 1 (as Wanda) holds the least memory; "
        "larger is faster on CPU but holds batch x seqlen x FFN-width activations",
    )
    p.add_argument("--out", type=Path, required=True, help="directory for the pruned model and report")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.add_argument("--no-progress", dest="progress", action="store_false")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mwanda", description=__doc__)
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
    return parser


def cmd_run(args: argparse.Namespace) -> int:
    from mwanda import experiments

    cfg = experiments.load_config(args.config)
    experiments.run(cfg, force=args.force, results_dir=args.results or experiments.RESULTS_DIR)
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from mwanda import experiments, sweep

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


def config_from_args(args: argparse.Namespace) -> PruneConfig:
    return PruneConfig(
        method=args.method,
        sparsity=args.sparsity,
        structure=args.structure,
        comparison=args.comparison,
        allocation=args.allocation,
        alpha=args.alpha,
        beta=args.beta,
        variation=args.variation,
        language_aware=args.language_aware,
        ria_a=args.ria_a,
        owl_m=args.owl_m,
        owl_lambda=args.owl_lambda,
        sequential=args.sequential,
        include=tuple(args.include),
        exclude=tuple(args.exclude),
        seed=args.seed,
    )


def cmd_prune(args: argparse.Namespace) -> int:
    from mwanda import calibration
    from mwanda.models import check_vocab, load_model
    from mwanda.prune import prune_model
    from mwanda.report import check_output_dir, save_pruned

    cfg = config_from_args(args)
    check_output_dir(args.out, args.overwrite)
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size {args.batch_size} must be >= 1.")
    calib, texts = None, None
    if args.calib_tokens:
        calib = calibration.read_tokens_jsonl(args.calib_tokens)
    elif args.calib_text:
        texts = calibration.read_text_jsonl(args.calib_text)
        calibration.split_evenly(args.nsamples, list(texts))  # fail on too few samples now
    elif cfg.method != "magnitude" or cfg.allocation != "uniform":
        raise ConfigError(
            f"--method {cfg.method} needs calibration data: give --calib-tokens or --calib-text."
        )
    model, tokenizer = load_model(args.model, dtype=args.dtype, device=args.device)
    if texts is not None:
        calib = calibration.build_balanced(texts, tokenizer, args.nsamples, args.seqlen, args.seed)
    if calib is not None:
        check_vocab(calib.input_ids, model)
        if args.save_calib:
            calibration.write_tokens_jsonl(calib, args.save_calib)
    report = prune_model(model, calib, cfg, batch_size=args.batch_size, progress=args.progress)
    out = save_pruned(model, tokenizer, report, args.out, overwrite=args.overwrite)
    print(report.summary())
    print(f"pruned model and report: {out / 'pruning_report.json'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return {"prune": cmd_prune, "run": cmd_run, "sweep": cmd_sweep}[args.command](args)
    except (ValueError, KeyError, FileExistsError, FileNotFoundError, PermissionError, RuntimeError) as err:
        print(f"mwanda: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
