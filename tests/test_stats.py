"""Streaming per-language statistics equal statistics computed from stored activations."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import tiny_calib, tiny_model
from torch import nn

from mwanda.core import stats as stats_mod
from mwanda.core.blocks import ffn_pair, find_blocks
from mwanda.core.config import PruneConfig
from mwanda.core.passes import BlockInputs, collect_block_stats
from mwanda.core.prune import prune_model
from mwanda.core.stats import Hessian, LanguageStats, StatsError, add_hessian


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
        stats = collect_block_stats(block, linears, x, index=0, prefix="b0.", ffn=ffn_pair(block))
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


def _stat_parts(stats: dict[str, LanguageStats]) -> dict:
    parts = {}
    for name, st in stats.items():
        for part in ("counts", "sumsq", "sums", "active", "hessian"):
            t = getattr(st, part)
            parts[name, part] = t.matrix if isinstance(t, Hessian) else t
    return parts


def _collect_both_ways(block, linears, ffn, model, calib, batch_size: int):
    """The statistics pass without outputs (stops early) and with them (full forwards), and how
    many times each linear actually ran its product in each."""
    ran = dict.fromkeys(linears, 0)
    hooks = [
        m.register_forward_hook(lambda *_, n=n: ran.__setitem__(n, ran[n] + 1)) for n, m in linears.items()
    ]
    out = []
    with torch.no_grad():
        for with_outputs in (False, True):
            ran.update(dict.fromkeys(linears, 0))
            x = BlockInputs.capture(model, calib, batch_size)
            outs = torch.empty_like(x.hidden) if with_outputs else None
            stats = collect_block_stats(
                block,
                linears,
                x,
                index=0,
                prefix="b0.",
                ffn=ffn,
                outs=outs,
                track_sums=True,
                hessian_weights=x.hessian_weights(True),
            )
            out.append((_stat_parts(stats), dict(ran)))
    for h in hooks:
        h.remove()
    return out


def test_statistics_pass_skips_the_block_tail_with_the_same_sums():
    """Without outputs, each batch after the first stops once every linear has its input: the
    down-projection's product never runs there, and every sum (Hessians included) is the same."""
    model, calib = tiny_model("llama", layers=1), tiny_calib(n_per_lang=4)  # 12 sequences
    block = find_blocks(model)[1][0]
    linears = {n: m for n, m in block.named_modules() if isinstance(m, nn.Linear)}
    (early, ran_early), (full, ran_full) = _collect_both_ways(
        block, linears, ffn_pair(block), model, calib, 4
    )
    assert early.keys() == full.keys()
    for key, t in full.items():
        assert (t is None) == (early[key] is None) and (t is None or torch.equal(t, early[key])), key
    assert ran_full["mlp.down_proj"] == 3 and ran_early["mlp.down_proj"] == 1  # the first batch only
    assert ran_early["mlp.gate_proj"] == ran_full["mlp.gate_proj"] == 3


class _TwiceBlock(nn.Module):
    """A block that applies one linear twice: its statistics need the whole forward."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.inner = nn.Linear(d, d)
        self.shared = nn.Linear(d, d)

    def forward(self, x, *args, **kwargs):  # the captured block arguments are not needed
        return self.shared(torch.relu(self.inner(self.shared(x))))


def test_statistics_pass_keeps_the_full_forward_when_a_linear_runs_twice():
    model, calib = tiny_model("llama", layers=1), tiny_calib(n_per_lang=4)
    torch.manual_seed(0)
    block = _TwiceBlock(model.config.hidden_size)
    linears = dict(block.named_children())
    (early, ran_early), (full, ran_full) = _collect_both_ways(block, linears, None, model, calib, 4)
    assert ran_early == ran_full == {"inner": 3, "shared": 6}
    for key, t in full.items():
        assert (t is None) == (early[key] is None) and (t is None or torch.equal(t, early[key])), key


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


# ------------------------------------------------- chunked reduction = per-sequence reduction


def per_sequence_reference(batches, n_langs: int, lang_weights: torch.Tensor):
    """The statistics as the pre-chunking code summed them: each sequence alone over its tokens in
    float64 (and its own X^T X for the Hessian), sequences combined per language by a one-hot
    matmul, batch by batch."""
    dim = batches[0][0].shape[-1]
    ref = LanguageStats.zeros(n_langs, dim)
    ref.active = torch.zeros_like(ref.sumsq)
    ref.hessian = Hessian(torch.zeros(dim, dim, dtype=torch.float64))
    for x, idx in batches:
        seqs = x.reshape(idx.numel(), -1, dim)
        onehot = nn.functional.one_hot(idx, n_langs).T.to(torch.float64)
        ref.counts += onehot.sum(dim=1) * seqs.shape[1]
        ref.sumsq += onehot @ torch.stack([torch.sum(s.double().square(), dim=0) for s in seqs])
        ref.sums += onehot @ torch.stack([torch.sum(s.double(), dim=0) for s in seqs])
        ref.active += onehot @ torch.stack([(s > 0).sum(dim=0, dtype=torch.float64) for s in seqs])
        for s, lang in zip(seqs, idx.tolist(), strict=True):
            s64 = s.double()
            ref.hessian.matrix.addmm_(s64.T, s64, alpha=lang_weights[lang].item())
    return ref


def chunked(batches, n_langs: int, lang_weights: torch.Tensor) -> LanguageStats:
    dim = batches[0][0].shape[-1]
    st = LanguageStats.zeros(n_langs, dim)
    st.hessian = Hessian(torch.zeros(dim, dim, dtype=torch.float64))
    for x, idx in batches:
        st.add(x, idx)
        st.add_active(x, idx)
        add_hessian(st.hessian.matrix, x, idx, lang_weights)
    return st


def assert_identical(got: LanguageStats, want: LanguageStats) -> None:
    for part in ("counts", "sumsq", "sums", "active"):
        assert torch.equal(getattr(got, part), getattr(want, part)), part
    assert torch.equal(got.hessian.matrix, want.hessian.matrix)


@pytest.fixture(params=[1, 2, 3], ids=lambda n: f"{n}threads")
def threads(request):
    """Reductions split work across threads by size: check each split."""
    before = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(before)


@pytest.mark.parametrize(
    ("batch", "seqlen", "dim", "chunk"),
    [
        (5, 7, 3, 1),  # chunk smaller than one sequence: one sequence at a time
        (5, 7, 3, 21),  # exactly one sequence
        (7, 9, 37, 2 * 9 * 37 + 5),  # two sequences per chunk, a shorter last chunk
        (6, 16, 64, 10**9),  # the whole batch in one chunk
        (4, 64, 688, 3 * 64 * 688),  # the tiny model's FFN width; sequences above the parallel grain
        (3, 256, 256, 64 * 256),  # chunk of a quarter sequence
        (9, 2, 1000, 5 * 2 * 1000),
    ],
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_chunked_statistics_bit_identical_to_per_sequence(
    monkeypatch, threads, batch, seqlen, dim, chunk, dtype
):
    monkeypatch.setattr(stats_mod, "CHUNK_ELEMENTS", chunk)
    gen = torch.Generator().manual_seed(batch * seqlen + dim)
    n_langs = 3
    batches = []
    for flat in (False, True):  # [B, T, d] and, as some models pass FFN inputs, [B * T, d]
        x = (torch.randn(batch, seqlen, dim, generator=gen) * torch.rand(dim, generator=gen) * 5).to(dtype)
        idx = torch.randint(0, n_langs, (batch,), generator=gen)
        batches.append((x.reshape(batch * seqlen, dim) if flat else x, idx))
    w = torch.tensor([1.0, 0.3, 2.5], dtype=torch.float64)
    before = [x.clone() for x, _ in batches]
    assert_identical(chunked(batches, n_langs, w), per_sequence_reference(batches, n_langs, w))
    assert all(torch.equal(x, b) for (x, _), b in zip(batches, before, strict=True))  # inputs untouched


def test_seq_chunks_bound_the_float64_copy(monkeypatch):
    monkeypatch.setattr(stats_mod, "CHUNK_ELEMENTS", 100)
    assert stats_mod.seq_chunks(7, 30) == [(0, 3), (3, 6), (6, 7)]
    assert stats_mod.seq_chunks(3, 101) == [(0, 1), (1, 2), (2, 3)]  # a sequence alone when larger
    assert stats_mod.seq_chunks(2, 0) == [(0, 2)]
    assert stats_mod.seq_chunks(3, 30, "meta") == [(0, 1), (1, 2), (2, 3)]  # off the CPU: per sequence


@pytest.mark.parametrize("batch_size", [1, 5, 12])
def test_chunk_size_does_not_change_collected_statistics(monkeypatch, batch_size):
    """Through the collector's hooks (shared q/k/v and gate/up inputs, FFN activity, Hessians):
    one sequence per chunk, a few, or the whole batch give the same bits."""
    model, calib = tiny_model("llama", layers=1), tiny_calib(n_per_lang=4)
    _, blocks = find_blocks(model)
    block = blocks[0]
    linears = {n: m for n, m in block.named_modules() if isinstance(m, nn.Linear)}
    results = []
    for chunk in (1, 2 * calib.seqlen * 8, 10**9):
        monkeypatch.setattr(stats_mod, "CHUNK_ELEMENTS", chunk)
        with torch.no_grad():
            x = BlockInputs.capture(model, calib, batch_size)
            results.append(
                collect_block_stats(
                    block,
                    linears,
                    x,
                    index=0,
                    prefix="b0.",
                    ffn=ffn_pair(block),
                    track_sums=True,
                    hessian_weights=x.hessian_weights(True),
                )
            )
    for other in results[1:]:
        for name, st in results[0].items():
            for part in ("counts", "sumsq", "sums", "active", "hessian"):
                a, b = getattr(st, part), getattr(other[name], part)
                a, b = (t.matrix if isinstance(t, Hessian) else t for t in (a, b))
                assert (a is None) == (b is None) and (a is None or torch.equal(a, b)), (name, part)
    assert results[0]["mlp.down_proj"].active is not None and results[0]["mlp.up_proj"].hessian is not None


def test_chunk_size_does_not_change_masks(monkeypatch):
    model, calib = tiny_model("llama"), tiny_calib(seed=1)
    hashes = set()
    for chunk in (1, 3 * calib.seqlen, 10**9):
        monkeypatch.setattr(stats_mod, "CHUNK_ELEMENTS", chunk)
        for method in ("mwanda", "sparsegpt"):
            report = prune_model(
                copy.deepcopy(model), calib, PruneConfig(method=method), batch_size=5, progress=False
            )
            hashes.add((method, report.mask_sha256))
    assert len(hashes) == 2


@pytest.mark.parametrize("n_langs", [2, 4])
def test_block_statistics_bytes_are_counted_once_and_grow_linearly_in_languages(n_langs):
    """Issue 12's cost law on a tiny Llama (d = 32, FFN 64): Wanda's and M-Wanda's statistics are,
    per linear, counts [L] and sumsq [L, d_in] in float64; with beta > 0 also the activity counts
    [L, 64] of the down-projection; SparseGPT adds one d_in x d_in Hessian per distinct input (q/k/v
    and gate/up share one)."""
    calib = tiny_calib(n_per_lang=2, langs=("en", "de", "fr", "ja")[:n_langs])
    d, f, L = 32, 64, n_langs
    plain = sum(8 * L * (1 + d_in) for d_in in (d, d, d, d, d, d, f))  # q, k, v, o, gate, up, down
    hessians = 8 * (d * d + d * d + d * d + f * f)  # q/k/v, o, gate/up, down

    def held(**kw) -> float:
        report = prune_model(tiny_model(layers=2), calib, PruneConfig(sparsity=0.5, **kw), progress=False)
        return report.peak_memory["block_statistics_mib"] * 2**20

    assert held(method="wanda") == held(method="mwanda") == plain
    assert held(method="mwanda", beta=1.0) == plain + 8 * L * f
    assert held(method="sparsegpt") == plain + hessians
