"""Memory plumbing of the driver: hand freed pages back between blocks, measure the peak, and
size ``--batch-size auto`` from the free memory. Nothing here changes what is computed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import resource

import torch
from torch import nn

from mwanda.core.blocks import block_device, find_blocks


@functools.cache
def _libc_malloc_trim():
    """glibc's malloc_trim, or None (musl, macOS, Windows)."""
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    return getattr(libc, "malloc_trim", None)


def release_memory() -> None:
    """Return freed memory to the OS between blocks.

    glibc keeps the pages of freed large tensors in its heap (they count as resident memory and,
    fragmented, make a later block grow the heap again); CUDA's caching allocator keeps its blocks
    too. Cheap next to a block's forward pass.
    """
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    trim = _libc_malloc_trim()
    if trim is not None:
        trim(0)


def peak_memory() -> dict[str, float]:
    """Peak resident memory of this process (MiB) and, on CUDA, peak allocated GPU memory."""
    out = {"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if torch.cuda.is_available():
        out["peak_cuda_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return out


# Share of the free memory that the per-batch activations of ``--batch-size auto`` may use: the
# rest is for the statistics, the scores of one layer and whatever else runs on the machine.
AUTO_BATCH_SHARE = 0.25
# And at most this many sequences: beyond it a CPU gains nothing and holds more (docs/measured.md,
# "Pruning speed and memory", has the batch sizes measured).
AUTO_BATCH_MAX = 8


def free_memory(device: torch.device) -> int:
    """Bytes free for new tensors on ``device``: CUDA's own count, else the OS's MemAvailable."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            fields = dict(line.split(":", 1) for line in fh)
        return int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):  # not Linux: the physical memory, halved
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2


def activation_bytes(model: nn.Module, seqlen: int) -> int:
    """Bytes one calibration sequence adds to a block's forward pass: hidden states, q/k/v and
    outputs (6 x d), the FFN's gate, up and activation (3 x its width) and the attention scores
    (heads x seqlen, when the kernel materialises them), in the model's dtype."""
    cfg = model.config
    d = getattr(cfg, "hidden_size", None) or cfg.n_embd
    ffn = getattr(cfg, "intermediate_size", None) or getattr(cfg, "ffn_dim", None) or 4 * d
    heads = getattr(cfg, "num_attention_heads", None) or getattr(cfg, "n_head", 1)
    itemsize = next(model.parameters()).element_size()
    return seqlen * (6 * d + 3 * ffn + heads * seqlen) * itemsize


def auto_batch_size(model: nn.Module, nsamples: int, seqlen: int, share: float = AUTO_BATCH_SHARE) -> int:
    """The largest batch (1..min(nsamples, AUTO_BATCH_MAX)) whose activations fit ``share`` of the
    free memory of the device that computes block 0. Masks do not depend on the batch size
    (tested); speed and memory do."""
    _, blocks = find_blocks(model)
    budget = share * free_memory(block_device(blocks[0]))
    return max(1, min(nsamples, AUTO_BATCH_MAX, int(budget // activation_bytes(model, seqlen))))
