"""Loading models and tokenizers: local directories and Hub ids go through the same code."""

from __future__ import annotations

import torch


class ModelLoadError(ValueError):
    """The model or tokenizer cannot be loaded; the message names the fix."""


def resolve_dtype(dtype: str) -> torch.dtype | str:
    if dtype == "auto":
        return "auto"
    if dtype not in ("float32", "float16", "bfloat16"):
        raise ModelLoadError(f"dtype {dtype!r} is not supported; use float32, float16, bfloat16 or auto.")
    return getattr(torch, dtype)


def load_model(name_or_path: str, dtype: str = "float32", device: str = "auto"):
    """(model, tokenizer or None). ``device='auto'`` spreads blocks over GPUs (device_map='auto')."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if device == "auto":
        device_map = "auto" if torch.cuda.is_available() else None
    else:
        device_map = {"": device}
    try:
        model = AutoModelForCausalLM.from_pretrained(
            str(name_or_path), dtype=resolve_dtype(dtype), device_map=device_map
        )
    except (OSError, ValueError) as err:
        raise ModelLoadError(
            f"could not load model {name_or_path!r} ({err.__class__.__name__}: {str(err).splitlines()[0]}); "
            "pass a directory containing config.json and weights, or a Hub id with network access."
        ) from None
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(name_or_path))
    except (OSError, ValueError):
        tokenizer = None
    model.eval()
    return model, tokenizer


def check_vocab(input_ids: torch.Tensor, model) -> None:
    """Token ids must exist in the model's embedding table (catches a mismatched tokenizer)."""
    vocab = model.get_input_embeddings().weight.shape[0]
    top = int(input_ids.max())
    if top >= vocab or int(input_ids.min()) < 0:
        raise ModelLoadError(
            f"calibration token id {top} is outside the model's vocabulary of {vocab}: the "
            "calibration was tokenized with another tokenizer; re-tokenize with this model's."
        )
