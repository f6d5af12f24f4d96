"""PruningReport: what was done, to which model, with which data, and what came out.

Written as ``pruning_report.json`` next to the pruned model. Saving is atomic: the model and
report go to a temporary directory beside the target, which is renamed into place at the end,
so an interrupted run never leaves half a model.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from mwanda import __version__
from mwanda.io import atomic_write_text

REPO_ROOT = Path(__file__).resolve().parent.parent


def git_revision() -> str | None:
    """The repository's commit (with '-dirty' for uncommitted changes), or None outside git."""
    try:
        rev = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return rev + ("-dirty" if dirty else "")


def environment_info() -> dict:
    """Versions that decide the numbers: mwanda, git, torch, transformers, python, device."""
    import transformers

    return {
        "mwanda": __version__,
        "git": git_revision(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
        "threads": torch.get_num_threads(),
    }


@dataclass
class PruningReport:
    method: str
    config: dict
    model: dict
    calibration: dict | None
    target_sparsity: float
    achieved_sparsity: float
    blocks: list[dict]
    layers: list[dict]
    mask_sha256: str
    timings: dict
    peak_memory: dict
    environment: dict

    @classmethod
    def build(
        cls,
        *,
        cfg,
        calib,
        model,
        layers,
        block_sparsity,
        block_scores,
        mask_sha256,
        timings,
        peak_memory,
        environment,
    ) -> PruningReport:
        blocks = []
        for b, target in enumerate(block_sparsity):
            rows = [r for r in layers if r["block"] == b]
            params = sum(r["params"] for r in rows)
            pruned = sum(r["pruned"] for r in rows)
            blocks.append(
                {
                    "block": b,
                    "allocated_sparsity": target,
                    "score": None if block_scores is None else block_scores[b],
                    "params": params,
                    "achieved_sparsity": pruned / params if params else 0.0,
                }
            )
        total = sum(r["params"] for r in layers)
        return cls(
            method=cfg.method,
            config=cfg.to_dict(),
            model=_model_info(model),
            calibration=None if calib is None else _calib_info(calib),
            target_sparsity=cfg.sparsity,
            achieved_sparsity=sum(r["pruned"] for r in layers) / total,
            blocks=blocks,
            layers=layers,
            mask_sha256=mask_sha256,
            timings=timings,
            peak_memory=peak_memory,
            environment=environment,
        )

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        """One line: method, sparsity achieved, time, mask hash prefix."""
        n = sum(r["params"] for r in self.layers)
        return (
            f"{self.method} {self.config['structure']} {self.config['allocation']}: "
            f"{self.achieved_sparsity:.4f} of {n:,} weights pruned (target {self.target_sparsity}) "
            f"in {self.timings['total_s']:.1f}s, masks {self.mask_sha256[:12]}"
        )

    def save(self, path: str | Path) -> None:
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> PruningReport:
        return cls(**json.loads(Path(path).read_text(encoding="utf-8")))


def _model_info(model) -> dict:
    cfg = getattr(model, "config", None)
    return {
        "class": type(model).__name__,
        "name_or_path": getattr(cfg, "_name_or_path", None),
        "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
        "parameters": sum(p.numel() for p in model.parameters()),
    }


def _calib_info(calib) -> dict:
    return {
        "languages": calib.languages,
        "nsamples": calib.nsamples,
        "seqlen": calib.seqlen,
        "tokens_per_language": calib.token_counts(),
    }


def check_output_dir(out: str | Path, overwrite: bool) -> Path:
    """Fail early (before loading or pruning) if ``out`` exists and may not be replaced."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(
            f"{out} already exists; pass --overwrite to replace it or choose another --out."
        )
    parent = out.resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    if not os.access(parent, os.W_OK):
        raise PermissionError(f"cannot write into {parent}; choose a writable --out.")
    return out


def save_pruned(model, tokenizer, report: PruningReport, out: str | Path, overwrite: bool = False) -> Path:
    """save_pretrained (safetensors) + pruning_report.json into ``out``, atomically."""
    out = check_output_dir(out, overwrite)
    tmp = Path(tempfile.mkdtemp(dir=out.resolve().parent, prefix=f".{out.name}.tmp-"))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        report.save(tmp / "pruning_report.json")
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
