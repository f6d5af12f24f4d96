"""The small adapter between the pruning driver and any Hugging Face causal decoder.

Three things differ between architectures, and this module is the only place that knows them:
where the decoder blocks live, which linear is the FFN down-projection (and which linear's
output decides whether its input neurons are active), and how a block is called. The last is
handled generically: the inputs of block 0 are captured with a forward pre-hook (with kwargs),
so position embeddings, masks, ALiBi biases and whatever else a model passes go through as is.
"""

from __future__ import annotations

import contextlib
import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from mwanda.errors import UserError

Tensor = torch.Tensor

# Where the decoder blocks live, tried in order.
BLOCK_PATHS = (
    "model.layers",  # Llama, Mistral, Qwen2, Gemma, Aya (Cohere)
    "model.decoder.layers",  # OPT
    "transformer.h",  # GPT-2, BLOOM, Falcon
    "gpt_neox.layers",  # GPT-NeoX, Pythia
)

# (FFN down-projection, linear whose output > 0 marks its input neurons active).
# Gated MLPs: the gate pre-activation; ungated MLPs: the first projection's output.
FFN_PAIRS = (
    ("mlp.down_proj", "mlp.gate_proj"),  # Llama, Mistral, Qwen2, Gemma, Cohere
    ("fc2", "fc1"),  # OPT
    ("mlp.dense_4h_to_h", "mlp.dense_h_to_4h"),  # BLOOM, GPT-NeoX, Falcon
    ("mlp.fc2", "mlp.fc1"),  # Phi
    ("mlp.c_proj", "mlp.c_fc"),  # GPT-2 (Conv1D)
)


class ModelStructureError(UserError, ValueError):
    """The model does not have the structure the driver needs; the message names the fix."""


def _get(obj: object, path: str) -> object | None:
    for part in path.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def find_blocks(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """(path, blocks) of the decoder blocks, e.g. ('model.layers', ModuleList)."""
    for path in BLOCK_PATHS:
        blocks = _get(model, path)
        if isinstance(blocks, nn.ModuleList) and len(blocks) > 0:
            return path, blocks
    raise ModelStructureError(
        f"no decoder blocks found in {type(model).__name__}: looked for {', '.join(BLOCK_PATHS)}. "
        "Add the attribute path of its block list to mwanda.core.blocks.BLOCK_PATHS."
    )


def _conv1d() -> type:
    from transformers.pytorch_utils import Conv1D  # GPT-2's linear, weight stored [d_in, d_out]

    return Conv1D


def is_prunable(mod: nn.Module) -> bool:
    """nn.Linear or GPT-2's Conv1D: a dense weight matrix applied to the last input dimension."""
    return isinstance(mod, (nn.Linear, _conv1d()))


def weight_matrix(mod: nn.Module) -> Tensor:
    """The weight as [d_out, d_in] (a view: pruning it prunes the module), whatever the layout."""
    w = mod.weight.detach()
    return w.t() if isinstance(mod, _conv1d()) else w


def block_linears(
    block: nn.Module, prefix: str = "", include: Sequence[str] = (), exclude: Sequence[str] = ()
) -> dict[str, nn.Module]:
    """The block's prunable linears by local name, filtered by fnmatch patterns on full names."""
    out = {}
    for name, mod in block.named_modules():
        if not is_prunable(mod):
            continue
        full = prefix + name
        if include and not any(fnmatch.fnmatch(full, p) for p in include):
            continue
        if any(fnmatch.fnmatch(full, p) for p in exclude):
            continue
        out[name] = mod
    return out


def unprunable_weights(block: nn.Module) -> dict[str, torch.Size]:
    """Weight tensors (>= 2-D) of ``block`` that no prunable linear owns, e.g. the fused 3-D expert
    tensors of mixture-of-experts models in transformers 5 or a router's weight."""
    owned = {id(m.weight) for m in block.modules() if is_prunable(m)}
    return {n: p.shape for n, p in block.named_parameters() if p.ndim >= 2 and id(p) not in owned}


def ffn_pair(block: nn.Module) -> tuple[str, str] | None:
    """(down-projection, activity source) local names for this block, or None if not found."""
    names = {n for n, m in block.named_modules() if is_prunable(m)}
    for down, source in FFN_PAIRS:
        if down in names and source in names:
            return down, source
    return None


def block_device(block: nn.Module) -> torch.device:
    """The device a block computes on (its first parameter's; accelerate keeps blocks whole)."""
    return next(block.parameters()).device


def to_device(obj: object, device: torch.device) -> object:
    """Move tensors nested in tuples/lists/dicts to ``device``."""
    if torch.is_tensor(obj):
        return obj.to(device)
    if isinstance(obj, (tuple, list)):
        return type(obj)(to_device(o, device) for o in obj)
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    return obj


class _Captured(Exception):
    """Raised by the pre-hook to stop the forward pass once block 0's inputs are known."""


@dataclass
class BlockCall:
    """Everything block 0 received besides the hidden states, for one batch."""

    args: tuple
    kwargs: dict


def capture_inputs(
    model: nn.Module, input_ids: Tensor, batch_size: int, out: Tensor | None = None
) -> tuple[Tensor, list[BlockCall]]:
    """Run the model up to block 0 on every batch of ``input_ids`` [N, T].

    Returns the hidden states entering block 0, [N, T, d] (written into ``out`` when given,
    else into a new buffer on block 0's device), and for each batch the other arguments of
    that call (positional args and kwargs, as the model passed them).
    """
    _, blocks = find_blocks(model)
    embed_device = model.get_input_embeddings().weight.device
    n = input_ids.shape[0]
    buf, calls = [out], []

    def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
        if args:
            x, rest = args[0], args[1:]
        else:
            kwargs = dict(kwargs)
            x, rest = kwargs.pop("hidden_states"), ()
        if buf[0] is None:
            buf[0] = x.new_empty((n, *x.shape[1:]))
        start = len(calls) * batch_size
        buf[0][start : start + x.shape[0]] = x.detach()
        if calls:  # equal tensors (position embeddings, masks) are kept once, not once per batch
            rest, kwargs = _reuse(rest, calls[-1].args), _reuse(kwargs, calls[-1].kwargs)
        calls.append(BlockCall(rest, kwargs))
        raise _Captured

    handle = blocks[0].register_forward_pre_hook(hook, with_kwargs=True)
    try:
        with torch.no_grad():
            for start in range(0, n, batch_size):
                with contextlib.suppress(_Captured):
                    model(input_ids[start : start + batch_size].to(embed_device), use_cache=False)
    finally:
        handle.remove()
    return buf[0], calls


def _reuse(new: object, old: object) -> object:
    """``new`` with every tensor equal to its counterpart in ``old`` replaced by that one."""
    if torch.is_tensor(new):
        same = torch.is_tensor(old) and new.shape == old.shape and new.dtype == old.dtype
        return old if same and new.device == old.device and torch.equal(new, old) else new
    if isinstance(new, (tuple, list)) and isinstance(old, (tuple, list)) and len(new) == len(old):
        return type(new)(_reuse(n, o) for n, o in zip(new, old, strict=True))
    if isinstance(new, dict) and isinstance(old, dict):
        return {k: _reuse(v, old.get(k)) for k, v in new.items()}
    return new


def run_block(block: nn.Module, x: Tensor, call: BlockCall) -> Tensor:
    """Call ``block`` on hidden states ``x`` with the captured arguments; returns hidden states."""
    dev = block_device(block)
    out = block(x.to(dev), *to_device(call.args, dev), **to_device(call.kwargs, dev))
    return out[0] if isinstance(out, (tuple, list)) else out
