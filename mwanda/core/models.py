"""Loading models and tokenizers: local directories and Hub ids go through the same code.

``resolve_model`` decides once what a model name means, so loading and fingerprinting agree
whatever the working directory: an existing directory (relative to the repository root, then to
the working directory) is local; a ``.gguf`` file or a packaged model's name is converted once
into a local directory (``gguf.py``); a name that looks like a path but does not exist is an
error and never goes to the Hub; anything else (``org/name``) is a Hub id.
"""

from __future__ import annotations

import functools
import pickle
from pathlib import Path

import torch

from mwanda import REPO_ROOT
from mwanda.errors import UserError


class ModelLoadError(UserError, ValueError):
    """The model or tokenizer cannot be loaded; the message names the fix."""


def _looks_like_path(name: str) -> bool:
    """A Hub id is ``name`` or ``org/name``; anything else with a separator is a path."""
    first = name.split("/", 1)[0]
    return (
        name.startswith(("/", ".", "~"))
        or "\\" in name
        or name.count("/") > 1
        or ("/" in name and (Path(first).exists() or (REPO_ROOT / first).exists()))
    )


def resolve_model(name: str | Path) -> Path | str:
    """An absolute local directory, or the Hub id ``name``; a missing local path is an error.
    A ``.gguf`` file or a packaged model's short name (``gguf.PACKAGED``) resolves to its
    converted directory (converted once, then cached)."""
    from mwanda.core import gguf

    text = str(name)
    candidates = model_candidates(text)
    if gguf.is_gguf_name(text):
        return gguf.resolve(text, candidates)
    for candidate in candidates:
        if candidate.is_dir():
            return candidate.resolve()
        if candidate.exists():
            raise ModelLoadError(
                f"model {text!r} is a file; pass the directory that holds config.json, or a .gguf file."
            )
    if isinstance(name, Path) or _looks_like_path(text):
        places = ", ".join(dict.fromkeys(str(p) for p in (REPO_ROOT, Path.cwd())))
        raise ModelLoadError(f"model directory {text!r} does not exist (looked in {places}); check the path.")
    return text


def model_candidates(name: str) -> list[Path]:
    """Where a local model ``name`` may be: under the repository root, then as given."""
    return [REPO_ROOT / Path(name).expanduser(), Path(name).expanduser()]


def check_model(name: str | Path) -> None:
    """Fail now on a local model that is missing (or a file that is not a GGUF), without loading
    or converting anything; Hub ids are checked when they are resolved."""
    from mwanda.core import gguf

    text = str(name)
    if gguf.is_gguf_name(text):
        gguf.check(text, model_candidates(text))
    else:
        resolve_model(name)


def hub_revision(repo_id: str, revision: str | None = None) -> str:
    """The commit a Hub model name (and branch or tag ``revision``) resolves to: the fingerprint
    of its weights, so a new upload under the same name never reuses old results.

    Read from the local Hub cache when the model is there (works offline), else asked of the Hub.
    """
    from huggingface_hub import try_to_load_from_cache
    from huggingface_hub.utils import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

    cached = try_to_load_from_cache(repo_id, "config.json", revision=revision)
    if isinstance(cached, str):  # a file read: cheap, and always what the cache holds now
        return Path(cached).parent.name  # .../snapshots/<commit>/config.json
    try:
        return _remote_commit(repo_id, revision)
    except GatedRepoError:
        raise ModelLoadError(
            f"{repo_id} is gated: run `huggingface-cli login` and accept its licence on the Hub first."
        ) from None
    except RevisionNotFoundError:
        raise ModelLoadError(
            f"{repo_id} has no revision {revision!r}; set model_revision to a branch, tag or commit it has."
        ) from None
    except RepositoryNotFoundError:
        raise ModelLoadError(
            f"{repo_id} is neither a local directory nor a Hub model; check the name."
        ) from None
    except Exception as err:  # noqa: BLE001 - HTTP, offline mode, DNS: all mean 'not reachable'
        raise ModelLoadError(
            f"cannot resolve the revision of Hub model {repo_id} ({err.__class__.__name__}); download it "
            "once with network access (it is then read from the cache) or pass a local directory."
        ) from None


@functools.lru_cache(maxsize=16)
def _remote_commit(repo_id: str, revision: str | None) -> str:
    """Asked of the Hub once per process: a sweep resolves its model's revision once."""
    from huggingface_hub import HfApi

    return HfApi().model_info(repo_id, revision=revision).sha


def resolve_dtype(dtype: str) -> torch.dtype | str:
    if dtype == "auto":
        return "auto"
    if dtype not in ("float32", "float16", "bfloat16"):
        raise ModelLoadError(f"dtype {dtype!r} is not supported; use float32, float16, bfloat16 or auto.")
    return getattr(torch, dtype)


def device_map_for(device: str) -> dict | str | None:
    """``device_map`` for from_pretrained; a device this machine lacks is an error now."""
    if device == "auto":
        return "auto" if torch.cuda.is_available() else None
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ModelLoadError(f"--device {device!r} is not a device; use cpu, cuda, cuda:N or auto.") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(f"--device {device} but this machine has no CUDA GPU; use --device cpu.")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ModelLoadError(f"--device {device} but only {torch.cuda.device_count()} GPU(s) are visible.")
    return {"": device}


def load_model(
    name_or_path: str | Path, dtype: str = "float32", device: str = "auto", revision: str | None = None
):
    """(model, tokenizer or None). ``device='auto'`` spreads blocks over GPUs (device_map='auto');
    ``revision`` (branch, tag or commit) applies to Hub ids."""
    from safetensors import SafetensorError
    from transformers import AutoModelForCausalLM, AutoTokenizer

    resolved = resolve_model(name_or_path)
    source = str(resolved)
    hub = {} if isinstance(resolved, Path) or revision is None else {"revision": revision}
    device_map = device_map_for(device)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            source, dtype=resolve_dtype(dtype), device_map=device_map, **hub
        )
    except SafetensorError as err:
        raise ModelLoadError(
            f"the weights of {source} are damaged ({err}); the file is truncated or not safetensors: "
            "copy or download the model again."
        ) from None
    except pickle.UnpicklingError as err:
        raise ModelLoadError(
            f"the pickle weights (.bin) of {source} hold more than tensors ({str(err).splitlines()[0]}); "
            "convert them to safetensors with a trusted loader first."
        ) from None
    except (OSError, ValueError, RuntimeError, EOFError) as err:
        raise ModelLoadError(
            f"could not load model {source!r} ({err.__class__.__name__}: {str(err).splitlines()[0]}); "
            "pass a directory containing config.json and weights, or a Hub id with network access."
        ) from None
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **hub)
    except (OSError, ValueError):
        tokenizer = None
    model.eval()
    return model, tokenizer


def context_length(name_or_path: str | Path) -> int | None:
    """The model's context length from its config alone (no weights loaded), or None."""
    from transformers import AutoConfig

    try:
        cfg = AutoConfig.from_pretrained(str(resolve_model(name_or_path)))
    except (OSError, ValueError):
        return None  # load_model reports what is wrong with the model
    for attr in ("max_position_embeddings", "n_positions", "seq_length"):
        if isinstance(getattr(cfg, attr, None), int):
            return getattr(cfg, attr)
    return None


def check_vocab(input_ids: torch.Tensor, model) -> None:
    """Token ids must exist in the model's embedding table (catches a mismatched tokenizer)."""
    vocab = model.get_input_embeddings().weight.shape[0]
    low, top = int(input_ids.min()), int(input_ids.max())
    if low < 0:
        raise ModelLoadError(f"calibration token id {low} is negative; token ids start at 0.")
    if top >= vocab:
        raise ModelLoadError(
            f"calibration token id {top} is outside the model's vocabulary of {vocab}: the "
            "calibration was tokenized with another tokenizer; re-tokenize with this model's."
        )
