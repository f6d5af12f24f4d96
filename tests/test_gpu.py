"""Tests that need a CUDA device (`pytest -m gpu`, run by `make gpu-check`; skipped without one)."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_calib, tiny_model

from mwanda.core.config import PruneConfig
from mwanda.core.prune import prune_model

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (make gpu-check)"),
]


@pytest.mark.parametrize("method", ["wanda", "mwanda"])
def test_cuda_prunes_like_the_cpu(method):
    """Same masks on the GPU as on the CPU (float32: scores agree to rounding, ties aside)."""
    calib = tiny_calib()
    cpu, gpu = tiny_model("llama"), tiny_model("llama").cuda()
    cfg = PruneConfig(method=method)
    a = prune_model(cpu, calib, cfg, progress=False)
    b = prune_model(gpu, calib, cfg, progress=False)
    assert a.achieved_sparsity == b.achieved_sparsity
    assert b.peak_memory["peak_cuda_mib"] > 0
    agree = [
        torch.equal(p.cpu() == 0, q == 0) for p, q in zip(gpu.parameters(), cpu.parameters(), strict=True)
    ]
    assert sum(agree) >= 0.95 * len(agree)
