"""Streaming per-language statistics equal statistics computed from stored activations."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_calib, tiny_model
from torch import nn

from mwanda.core.blocks import ffn_pair, find_blocks
from mwanda.core.prune import BlockInputs, collect_block_stats
from mwanda.core.stats import LanguageStats, StatsError


def test_language_stats_add_matches_direct_sums():
    x = torch.randn(5, 7, 3)
    idx = torch.tensor([0, 1, 0, 2, 1])
    st = LanguageStats.zeros(3, 3)
    st.add(x, idx)
    for lang in range(3):
        rows = x[idx == lang].reshape(-1, 3).double()
        assert st.counts[lang] == rows.shape[0]
        torch.testing.assert_close(st.sumsq[lang], rows.square().sum(0))
        torch.testing.assert_close(st.sums[lang], rows.sum(0))
    assert st.sumsq.dtype == torch.float64


def test_block_collector_matches_stored_activations():
    model, calib = tiny_model("llama", layers=1), tiny_calib(n_per_lang=3)
    _, blocks = find_blocks(model)
    block = blocks[0]
    linears = {n: m for n, m in block.named_modules() if isinstance(m, nn.Linear)}
    seen, gate_out = {n: [] for n in linears}, []
    hooks = [
        m.register_forward_pre_hook(lambda mod, a, n=n: seen[n].append(a[0])) for n, m in linears.items()
    ]
    hooks.append(block.mlp.gate_proj.register_forward_hook(lambda m, a, o: gate_out.append(o)))
    with torch.no_grad():
        model(calib.input_ids)
    for h in hooks:
        h.remove()
    with torch.no_grad():
        x = BlockInputs.capture(model, calib, batch_size=4)
        stats = collect_block_stats(block, linears, ffn_pair(block), x, "b0.")
    lang = calib.lang_index()
    for name in linears:
        X = seen[name][0]
        for lg in range(3):
            rows = X[lang == lg].reshape(-1, X.shape[-1]).double()
            torch.testing.assert_close(stats[name].sumsq[lg], rows.square().sum(0))
            assert stats[name].counts[lg] == rows.shape[0]
    gate = gate_out[0]
    for lg in range(3):
        expected = (gate[lang == lg] > 0).reshape(-1, gate.shape[-1]).sum(0).double()
        assert torch.equal(stats["mlp.down_proj"].active[lg], expected)
    assert stats["self_attn.q_proj"].active is None


def test_nan_statistics_raise_with_fix():
    st = LanguageStats.zeros(1, 2)
    st.add(torch.tensor([[[float("inf"), 1.0]]]), torch.tensor([0]))
    with pytest.raises(StatsError, match="--dtype"):
        st.check_finite("layer")


def test_add_batches_equals_add():
    x = torch.randn(7, 5, 3)
    idx = torch.tensor([0, 1, 1, 2, 0, 2, 1])
    whole, parts = LanguageStats.zeros(3, 3), LanguageStats.zeros(3, 3)
    whole.add(x, idx)
    parts.add_batches(x, list(idx.split(3)))
    assert torch.equal(whole.counts, parts.counts)
    torch.testing.assert_close(whole.sumsq, parts.sumsq, rtol=1e-12, atol=0)
    torch.testing.assert_close(whole.sums, parts.sums, rtol=1e-12, atol=1e-15)


def test_add_leaves_float64_input_untouched():
    x = torch.randn(2, 4, 3, dtype=torch.float64)
    before = x.clone()
    st = LanguageStats.zeros(2, 3)
    st.add(x, torch.tensor([0, 1]))
    assert torch.equal(x, before)
    torch.testing.assert_close(st.sumsq[1], x[1].square().sum(0))
