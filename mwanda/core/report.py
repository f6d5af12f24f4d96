"""PruningReport: what was done, to which model, with which data, and what came out.

Written as ``pruning_report.json`` next to the pruned model. Saving is atomic: the model and
report go to a directory beside the target, which is renamed into place at the end, so an
interrupted run never leaves half a model (and the next run on the same ``--out`` removes what
it left). ``--out`` never overlaps the model or calibration files it was computed from.
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from mwanda import REPO_ROOT, __version__
from mwanda.errors import UserError
from mwanda.io import atomic_write_text, umask


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
        "machine": machine(),
    }


def machine() -> str:
    """The processor the numbers were computed on, and its cores (and the GPU, if any)."""
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            name = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), name)
    except OSError:
        pass
    gpu = f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return f"{name}, {os.cpu_count()} cores{gpu}"


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
    # share of the blocks' weight matrices in pruned layers, and what stayed dense (and why)
    coverage: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

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
        coverage=None,
        warnings=(),
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
            coverage=coverage or {},
            warnings=list(warnings),
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


REPORT_NAME = "pruning_report.json"


class OutputError(UserError, ValueError):
    """``--out`` cannot be written as asked; the message names the fix."""


def overlaps(a: Path, b: Path) -> bool:
    """``a`` and ``b`` (resolved) are the same path or one lies inside the other."""
    return a == b or a in b.parents or b in a.parents


def check_output_dir(out: str | Path, overwrite: bool, inputs: Sequence[str | Path] = ()) -> Path:
    """Fail early (before loading or pruning) unless ``out`` may be written.

    ``out`` must not be, contain or lie inside any of ``inputs`` (the model directory, the
    calibration files): replacing it would destroy them. An existing ``out`` is replaced only
    with ``overwrite`` and only if mwanda wrote it (it holds a pruning report).
    """
    out = Path(out).expanduser()
    target = out.resolve()
    for inp in inputs:
        source = Path(inp).expanduser().resolve()
        if overlaps(target, source):
            raise OutputError(
                f"--out {out} overlaps the input {inp}: writing it would destroy that input; "
                "choose an --out outside the model directory and the calibration files."
            )
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out} is a file; give the path of a directory to create.")
    if out.exists() and not overwrite:
        raise OutputError(f"{out} already exists; pass --overwrite to replace it or choose another --out.")
    if out.exists() and not (out / REPORT_NAME).is_file():
        raise OutputError(
            f"{out} exists and was not written by mwanda (it has no {REPORT_NAME}); --overwrite only "
            "replaces earlier mwanda outputs: remove it yourself or choose another --out."
        )
    existing = next(p for p in (target, *target.parents) if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write into {existing}; choose a writable --out.")
    return out


class OutputSlot:
    """Exclusive use of ``out`` while a run computes and saves into it.

    A hidden sibling ``.<name>.mwanda-partial/`` holds a lock file (flock, released by the kernel
    even on kill -9) and, during the save, the new directory. So two runs racing for one ``--out``
    fail up front, and what an interrupted run leaves is found and cleaned by the next run on the
    same ``--out`` (an old output moved aside mid-swap is put back first).
    """

    def __init__(self, out: str | Path, overwrite: bool = False, inputs: Sequence[str | Path] = ()) -> None:
        self.out = check_output_dir(out, overwrite, inputs)
        self.overwrite = overwrite
        self.partial = self.out.with_name(f".{self.out.name}.mwanda-partial")
        self._lock = None

    def __enter__(self) -> OutputSlot:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.partial.mkdir(exist_ok=True)
        lock = (self.partial / "lock").open("a")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise OutputError(
                f"another mwanda run is writing {self.out} (it holds {self.partial}/lock); wait for it "
                "or choose another --out."
            ) from None
        self._lock = lock
        old = self.partial / "old"
        if old.is_dir() and not self.out.exists():
            os.replace(old, self.out)  # an earlier run died mid-swap: its predecessor comes back
        for stale in self.partial.iterdir():  # an earlier run died while saving
            if stale.name != "lock":
                shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
        return self

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self.partial, ignore_errors=True)
        self._lock.close()

    def commit(self, write: Callable[[Path], None]) -> Path:
        """``write(tmp)`` fills a new directory, which then replaces ``out`` by renames."""
        check_output_dir(self.out, self.overwrite)  # nothing appeared there meanwhile
        tmp = self.partial / "new"
        tmp.mkdir()
        write(tmp)
        apply_umask(tmp)
        if self.out.exists():
            os.replace(self.out, self.partial / "old")
        os.replace(tmp, self.out)
        return self.out


def apply_umask(root: Path) -> None:
    """Give ``root`` and everything in it the modes a plain open/mkdir would (some writers, such as
    safetensors', create their files 0600 through a temporary file)."""
    mask = umask()
    for path in (root, *root.rglob("*")):
        os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~mask)


def save_pruned(
    model, tokenizer, report: PruningReport, out: str | Path, overwrite: bool = False, slot=None
) -> Path:
    """save_pretrained (safetensors) + pruning_report.json into ``out``, atomically.

    ``slot``: the OutputSlot the caller already holds for ``out`` (else one is taken here).
    """
    if slot is None:
        with OutputSlot(out, overwrite) as own:
            return save_pruned(model, tokenizer, report, out, overwrite, own)

    def write(tmp: Path) -> None:
        model.save_pretrained(tmp, safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        report.save(tmp / REPORT_NAME)  # last: its presence marks a complete mwanda output

    return slot.commit(write)
