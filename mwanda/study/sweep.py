"""Grids of experiments: expand a YAML grid into configs, run them here or as submitit jobs.

    # grid.yaml
    profile: embedded
    base: {allocation: uniform}
    grid: {method: [wanda, mwanda], sparsity: [0.5, 0.6], seed: [0, 1, 2]}

``mwanda sweep grid.yaml`` runs the configs without a record one after another;
``--executor local`` submits one job per config with submitit's local executor, ``--executor
slurm`` (or ``auto``) to a cluster. Scheduling is submitit's; the store skips what is done, and
a damaged record counts as not done (``experiments.read_record``), so the sweep rewrites it.
"""

from __future__ import annotations

import itertools
from pathlib import Path

from mwanda.core.config import ConfigError
from mwanda.study import experiments
from mwanda.study.experiments import RESULTS_DIR, ExperimentConfig

# SparseGPT in notebooks 04 and 05: method label -> the config keys that make it. Chosen by
# notebooks/06_ablations on the embedded dev split at 60%: percdamp in {0.001, 0.01, 0.1} for plain
# SparseGPT (0.01, the paper's default, was lowest: 1.20% vs 1.25% and 1.24%); then, at that percdamp,
# alpha in {0, 0.5, 1, 2, 4} and beta in {0, 1} for the language-aware variant, whose alpha and beta
# are its own (PruneConfig's defaults are M-Wanda's). alpha = beta = 0 was lowest (1.22%; every other
# point 1.24% to 1.35%): the chosen variant is the language-balanced Hessian alone.
SPARSEGPT_VARIANTS = {
    "sparsegpt": {"method": "sparsegpt", "percdamp": 0.01},
    "mwanda+sparsegpt": {
        "method": "sparsegpt",
        "language_aware": True,
        "percdamp": 0.01,
        "alpha": 0.0,
        "beta": 0.0,
    },
}


def expand(spec: dict) -> list[ExperimentConfig]:
    """Configs of a grid spec: ``profile``, ``base`` (fixed keys), ``grid`` (key -> list of
    values); or ``profile`` and ``configs``, a list of configs each given in full (what
    ``python -m mwanda.study.reproduce grid`` writes for a cluster)."""
    unknown = sorted(set(spec) - {"profile", "base", "grid", "configs"})
    if unknown:
        raise ConfigError(f"unknown grid key(s) {unknown}; a grid file has profile, base and grid.")
    if "configs" in spec:
        return _listed(spec)
    base, grid = _mapping(spec, "base"), _mapping(spec, "grid")
    for k, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"grid.{k} must be a non-empty list of values.")
    both = sorted(set(base) & set(grid))
    if both:
        raise ConfigError(f"{both} are in both base and grid; give each key in one of them.")
    keys = list(grid)
    configs, seen = [], set()
    for combo in itertools.product(*(grid[k] for k in keys)):
        cfg = experiments.make_config(
            spec.get("profile", "embedded"), **base, **dict(zip(keys, combo, strict=True))
        )
        if cfg.key() not in seen:  # e.g. several alphas of the dense baseline are one config
            seen.add(cfg.key())
            configs.append(cfg)
    return configs


def _listed(spec: dict) -> list[ExperimentConfig]:
    """The configs of a spec's ``configs`` list (no base or grid beside it)."""
    if set(spec) - {"profile", "configs"}:
        raise ConfigError("a grid file with configs has only profile beside it; drop base and grid.")
    listed = spec["configs"]
    if not isinstance(listed, list) or not all(isinstance(c, dict) for c in listed):
        raise ConfigError("configs must be a list of mappings of config keys to values.")
    configs = [experiments.make_config(spec.get("profile", "embedded"), **c) for c in listed]
    return list({c.key(): c for c in configs}.values())


def _mapping(spec: dict, name: str) -> dict:
    """``spec[name]`` as a mapping of config keys (names) to values; empty if absent."""
    value = spec.get(name) or {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ConfigError(
            f"{name} must be a mapping of config keys to values, e.g. {name}: {{method: wanda}}."
        )
    return value


def load_grid(path: str | Path) -> list[ExperimentConfig]:
    """The configs of grid file ``path``; every error names the file."""
    spec = experiments.read_yaml(path)
    with experiments.naming_file(path):
        return expand(spec)


def pending(configs: list[ExperimentConfig], results_dir: str | Path = RESULTS_DIR) -> list[ExperimentConfig]:
    """The configs without a valid record: a damaged one is warned about and counts as pending."""
    todo = "it counts as pending and the sweep rewrites it"
    return [c for c in configs if experiments.find_record(c, results_dir, todo) is None]


def run_local(
    configs: list[ExperimentConfig], results_dir: str | Path = RESULTS_DIR, progress: bool | None = None
) -> list[dict]:
    """Run configs one after another in this process (model and data loaded once)."""
    experiments.check_results_dir(results_dir)
    return [experiments.run(c, results_dir=results_dir, progress=progress) for c in configs]


def _run_one(cfg: ExperimentConfig, results_dir: str) -> str:
    """A job's body: run one config, return its record key."""
    return experiments.run(cfg, results_dir=results_dir, progress=False)["key"]


def submit(
    configs: list[ExperimentConfig],
    executor: str = "local",
    results_dir: str | Path = RESULTS_DIR,
    log_dir: str | Path | None = None,
    **params,
):
    """One submitit job per config. ``executor``: 'local', 'slurm' or 'auto'. ``params`` go to
    ``update_parameters`` (e.g. timeout_min=60, slurm_partition='gpu', gpus_per_node=1)."""
    import submitit

    results_dir = experiments.check_results_dir(results_dir)
    log_dir = Path(log_dir or results_dir / "jobs")
    if executor == "local":
        ex = submitit.LocalExecutor(folder=log_dir)
    elif executor in ("slurm", "auto"):
        ex = submitit.AutoExecutor(folder=log_dir, cluster=None if executor == "auto" else "slurm")
    else:
        raise ConfigError(f"executor={executor!r}: use 'local', 'slurm' or 'auto'.")
    ex.update_parameters(**({"timeout_min": 120} | params))
    with ex.batch():
        jobs = [ex.submit(_run_one, c, str(results_dir)) for c in configs]
    return jobs


def run_grid(
    profile: str = "embedded",
    results_dir: str | Path = RESULTS_DIR,
    base: dict | None = None,
    progress: bool | None = None,
    **grid,
):
    """Run (or reuse) every config of ``grid`` and its dense baselines; return the tidy frame of
    those records with the dense values joined (``results.with_dense``). Scalars in ``grid``
    are fixed values, lists are swept: ``run_grid("smoke", method=["wanda", "mwanda"], sparsity=0.5)``.
    """
    from mwanda.study import results

    spec = {
        "profile": profile,
        "base": base or {},
        "grid": {k: v if isinstance(v, list) else [v] for k, v in grid.items()},
    }
    configs = expand(spec)
    dense = {c.dense().key(): c.dense() for c in configs}
    todo = list(dense.values()) + [c for c in configs if c.key() not in dense]
    return results.with_dense(results.frame(run_local(todo, results_dir, progress)))
