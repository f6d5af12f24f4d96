"""The small adapter between the pruning driver and any Hugging Face causal decoder.

Three things differ between architectures, and this module is the only place that knows them:
where the decoder blocks live, which linear is the FFN down-projection (and which linear's
output decides whether its input neurons are active), and how a block is called. The last is
handled generically: the model's own forward runs with every block replaced by a stand-in that
records its call, so each block's position embeddings, masks, ALiBi biases and whatever else a
model passes go through as is.
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
    """Raised by the last block's stand-in to stop the forward pass once every call is known."""


@dataclass
class BlockCall:
    """Everything one block received besides the hidden states, for one batch."""

    args: tuple
    kwargs: dict


def capture_inputs(
    model: nn.Module, input_ids: Tensor, batch_size: int, out: Tensor | None = None
) -> tuple[Tensor, list[list[BlockCall]]]:
    """Run the model's own forward on every batch of ``input_ids`` [N, T], blocks replaced by
    stand-ins that record their call and pass the hidden states through unchanged.

    Returns the hidden states entering block 0, [N, T, d] (written into ``out`` when given,
    else into a new buffer), and ``calls[b][batch]``: the other arguments the model passed to
    block ``b`` (positional args and kwargs, as it passed them). Each block keeps its own call
    because models differ per block: Gemma 2/3, Cohere 2 and any config with ``layer_types``
    give sliding-window and global layers their own masks and rotary tables.
    """
    _, blocks = find_blocks(model)
    recorder = _CallRecorder(len(blocks), input_ids.shape[0], batch_size, out)
    saved = [blk.__dict__.get("forward") for blk in blocks]
    try:
        for b, blk in enumerate(blocks):
            blk.forward = recorder.stand_in(b, blk)
        embed_device = model.get_input_embeddings().weight.device
        with torch.no_grad():
            for start in range(0, input_ids.shape[0], batch_size):
                with contextlib.suppress(_Captured):
                    model(input_ids[start : start + batch_size].to(embed_device), use_cache=False)
                recorder.check_batch()
    finally:
        for blk, fwd in zip(blocks, saved, strict=True):
            del blk.forward  # the instance attribute we set; accelerate's wrapper, if any, comes back
            if fwd is not None:
                blk.forward = fwd
    return recorder.hidden, recorder.calls


class _CallRecorder:
    """The stand-ins' shared state: block 0's inputs and every block's call, per batch."""

    def __init__(self, n_blocks: int, n: int, batch_size: int, out: Tensor | None) -> None:
        self.n, self.batch_size, self.hidden = n, batch_size, out
        self.calls: list[list[BlockCall]] = [[] for _ in range(n_blocks)]
        self.returns: dict[type, object] = {}  # what a block of each class returns, learnt once

    def stand_in(self, b: int, block: nn.Module):
        real_forward = block.forward

        def forward(*args, **kwargs):
            if args:
                x, rest, other = args[0], args[1:], kwargs
            else:
                other = {k: v for k, v in kwargs.items() if k != "hidden_states"}
                x, rest = kwargs["hidden_states"], ()
            self.record(b, x, rest, other)
            if b == len(self.calls) - 1:
                raise _Captured  # the final norm and the output layer are not needed
            kind = type(block)
            if kind not in self.returns:  # one real call per block class shows its return type
                self.returns[kind] = real_forward(*args, **kwargs)  # as the model called it
            return _with_hidden(self.returns[kind], x)

        return forward

    def record(self, b: int, x: Tensor, rest: tuple, kwargs: dict) -> None:
        batch = len(self.calls[b])
        if b == 0:
            if self.hidden is None:
                self.hidden = x.new_empty((self.n, *x.shape[1:]))
            start = batch * self.batch_size
            self.hidden[start : start + x.shape[0]] = x.detach()
        if batch:  # equal tensors (position embeddings, masks) are kept once, not once per batch
            prev = self.calls[b][-1]
            rest, kwargs = _reuse(rest, prev.args), _reuse(kwargs, prev.kwargs)
        self.calls[b].append(BlockCall(rest, kwargs))

    def check_batch(self) -> None:
        """Every block was called exactly once per batch, in a forward that reached the last."""
        counts = {len(c) for c in self.calls}
        if len(counts) != 1:
            per_block = [len(c) for c in self.calls]
            raise ModelStructureError(
                f"the model called its blocks unevenly in one forward pass (calls so far per block: "
                f"{per_block}); the driver replays each block once per batch. Models that skip or "
                "reuse blocks are not supported."
            )


def _with_hidden(template: object, x: Tensor) -> object:
    """``x`` in the shape of what a block returns: the tensor itself, or a tuple led by it."""
    if torch.is_tensor(template):
        return x
    if isinstance(template, (tuple, list)) and template and torch.is_tensor(template[0]):
        return type(template)((x, *template[1:]))
    raise ModelStructureError(
        f"a decoder block returned {type(template).__name__}, not hidden states or a tuple led by "
        "them; mwanda.core.blocks.run_block cannot replay it."
    )


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
