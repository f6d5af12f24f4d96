"""The sequential driver on tiny random models of every supported layout."""

from __future__ import annotations

import pytest
import torch
from conftest import ARCHS, WINDOWED_CONFIGS, tiny_calib, tiny_model
from torch import nn

from mwanda.core.blocks import ModelStructureError, capture_inputs, ffn_pair, find_blocks, run_block
from mwanda.core.config import PruneConfig
from mwanda.core.passes import BlockInputs, forward_block
from mwanda.core.plan import make_plan
from mwanda.core.prune import prune_model


def linears_of(module):
    """(name, [d_out, d_in] weight view) of every nn.Linear and GPT-2 Conv1D (stored [d_in, d_out])."""
    from transformers.pytorch_utils import Conv1D

    return {
        n: m.weight.detach().T if isinstance(m, Conv1D) else m.weight.detach()
        for n, m in module.named_modules()
        if isinstance(m, (nn.Linear, Conv1D))
    }


def brute_force_wanda(model, calib, sparsity):
    """Sequential Wanda written straight from the formula, independent of the driver.

    For block b in order: run the *whole* (partly pruned) model, keep every input token of each
    linear in block b, score |W_ij| * ||X_j||_2 and prune, per row, the int(d_in * s) lowest
    scores in a stable ascending order.
    """
    _, blocks = find_blocks(model)
    masks = {}
    for b, block in enumerate(blocks):
        linears = linears_of(block)
        seen = {n: [] for n in linears}
        hooks = [
            block.get_submodule(n).register_forward_pre_hook(
                lambda mod, a, n=n, seen=seen: seen[n].append(a[0].reshape(-1, a[0].shape[-1]))
            )
            for n in linears
        ]
        with torch.no_grad():
            model(calib.input_ids, use_cache=False)
        for h in hooks:
            h.remove()
        for name, W in linears.items():
            X = torch.cat(seen[name]).double()
            norm = torch.sqrt((X * X).sum(0))
            score = W.abs().float() * norm.float()
            d_out, d_in = score.shape
            mask = torch.zeros_like(score, dtype=torch.bool)
            for i in range(d_out):
                order = sorted(range(d_in), key=lambda j: (score[i, j].item(), j))
                mask[i, order[: int(d_in * sparsity)]] = True
            W[mask] = 0
            masks[f"{b}.{name}"] = mask
    return masks


def zero_masks(model):
    _, blocks = find_blocks(model)
    return {f"{b}.{n}": W == 0 for b, blk in enumerate(blocks) for n, W in linears_of(blk).items()}


def clone(model):
    copy = type(model)(model.config)
    copy.load_state_dict(model.state_dict())
    return copy.eval()


@pytest.mark.parametrize("arch", ["llama", "opt", "gpt2"])
def test_wanda_equals_brute_force(arch):
    model, calib = tiny_model(arch), tiny_calib()
    reference = clone(model)
    prune_model(model, calib, PruneConfig(method="wanda", sparsity=0.5), batch_size=5, progress=False)
    expected = brute_force_wanda(reference, calib, 0.5)
    got = zero_masks(model)
    assert got.keys() == expected.keys()
    for name in expected:
        assert torch.equal(got[name], expected[name]), name


def test_mwanda_without_extras_equals_wanda_bitwise(calib):
    model = tiny_model("llama")
    a, b = clone(model), clone(model)
    ra = prune_model(a, calib, PruneConfig(method="wanda"), progress=False)
    rb = prune_model(b, calib, PruneConfig(method="mwanda", alpha=0.0, beta=0.0), progress=False)
    assert ra.mask_sha256 == rb.mask_sha256
    assert all(
        torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )


def test_mwanda_terms_change_masks(calib):
    model = tiny_model("llama")
    base = prune_model(clone(model), calib, PruneConfig(method="wanda"), progress=False).mask_sha256
    for cfg in (
        PruneConfig(method="mwanda", alpha=1.0, beta=0.0),
        PruneConfig(method="mwanda", alpha=0.0, beta=1.0),
    ):
        assert prune_model(clone(model), calib, cfg, progress=False).mask_sha256 != base


def test_beta_only_touches_ffn_down_projection(calib):
    model = tiny_model("llama")
    a, b = clone(model), clone(model)
    # Dense statistics: with sequential pruning block 0's change would reach every later block.
    prune_model(a, calib, PruneConfig(method="mwanda", alpha=0.0, beta=0.0, sequential=False), progress=False)
    prune_model(b, calib, PruneConfig(method="mwanda", alpha=0.0, beta=2.0, sequential=False), progress=False)
    ma, mb = zero_masks(a), zero_masks(b)
    changed = {n for n in ma if not torch.equal(ma[n], mb[n])}
    assert changed and all(n.endswith("mlp.down_proj") for n in changed)


REPLAY_LAYOUTS = [(arch, False) for arch in ARCHS] + [(arch, True) for arch in WINDOWED_CONFIGS]


@pytest.mark.parametrize(("arch", "windowed"), REPLAY_LAYOUTS)
def test_driver_propagation_reproduces_model_hidden_states(arch, windowed):
    """With nothing pruned, the hidden states the driver carries from block to block are the
    model's own: each block is replayed with its own call (Gemma's global layers get their own
    rotary tables and, past the window, their own mask)."""
    model, calib = tiny_model(arch, layers=4, windowed=windowed), tiny_calib()
    plan = make_plan(model, PruneConfig())
    with torch.no_grad():
        ref = model(calib.input_ids, output_hidden_states=True, use_cache=False).hidden_states
        x = BlockInputs.capture(model, calib, batch_size=5)
        torch.testing.assert_close(x.hidden, ref[0])
        outs = torch.empty_like(x.hidden)
        for b in range(len(plan.blocks) - 1):  # the last entry of hidden_states is after the final norm
            forward_block(plan.blocks[b], x, outs, index=b)
            x.hidden, outs = outs, x.hidden
            torch.testing.assert_close(x.hidden, ref[b + 1], rtol=1e-5, atol=1e-5)


def test_windowed_layers_are_called_with_their_own_arguments():
    """The test above could pass by luck if every call were the same: Gemma 3's sliding and
    global layers do get different rotary tables and masks, and block 0's call would not do."""
    model, calib = tiny_model("gemma3_text", layers=3), tiny_calib()  # the last state is normed
    _, blocks = find_blocks(model)
    with torch.no_grad():
        ref = model(calib.input_ids, output_hidden_states=True, use_cache=False).hidden_states
        x, calls = capture_inputs(model, calib.input_ids, batch_size=12)
        sliding, full = calls[0][0].kwargs, calls[1][0].kwargs
        assert not torch.equal(sliding["position_embeddings"][0], full["position_embeddings"][0])
        masks = sliding["attention_mask"], full["attention_mask"]  # sdpa's causal mask may be None
        assert masks[0] is not None and (masks[1] is None or not torch.equal(*masks))
        y = run_block(blocks[0], x, calls[0][0])
        torch.testing.assert_close(run_block(blocks[1], y, calls[1][0]), ref[2], rtol=1e-5, atol=1e-5)
        wrong = run_block(blocks[1], y, calls[0][0])  # what replaying block 0's call gave
    assert not torch.allclose(wrong, ref[2], rtol=1e-3, atol=1e-3)


def test_capture_keeps_equal_call_tensors_once():
    model, calib = tiny_model("llama"), tiny_calib()
    _, blocks = find_blocks(model)
    with torch.no_grad():
        ref = model(calib.input_ids, output_hidden_states=True, use_cache=False).hidden_states[1]
        x, calls = capture_inputs(model, calib.input_ids, batch_size=1)
        cos = [c.kwargs["position_embeddings"][0] for per_block in calls for c in per_block]
        assert all(c is cos[0] for c in cos)  # one copy of the rotary tables, not one per sequence
        y = torch.cat([run_block(blocks[0], x[i : i + 1], c) for i, c in enumerate(calls[0])])
    torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-5)


def test_capture_restores_the_blocks_and_runs_no_output_layer():
    model, calib = tiny_model("llama"), tiny_calib()
    _, blocks = find_blocks(model)
    called = []
    model.lm_head.register_forward_hook(lambda *_: called.append(1))
    with torch.no_grad():
        capture_inputs(model, calib.input_ids, batch_size=4)
    assert called == [] and all("forward" not in blk.__dict__ for blk in blocks)
    with torch.no_grad():
        model(calib.input_ids[:1])
    assert called == [1]


def test_a_model_that_skips_a_block_is_refused():
    model, calib = tiny_model("llama"), tiny_calib()
    model.config.num_hidden_layers = 2  # Llama's loop then never reaches its last block
    with torch.no_grad(), pytest.raises(ModelStructureError, match="unevenly"):
        capture_inputs(model, calib.input_ids, batch_size=4)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("method", ["magnitude", "wanda", "ria", "mwanda", "sparsegpt"])
def test_every_layout_and_method_prunes_exact_row_counts(arch, method, calib):
    model = tiny_model(arch)
    embeddings = (model.get_input_embeddings().weight.clone(), model.get_output_embeddings().weight.clone())
    report = prune_model(model, calib, PruneConfig(method=method, sparsity=0.5), batch_size=4, progress=False)
    _, blocks = find_blocks(model)
    linears = [W for blk in blocks for W in linears_of(blk).values()]
    assert len(report.layers) == len(linears) > 0
    for W in linears:
        d_in = W.shape[1]
        assert ((W == 0).sum(1) == d_in // 2).all()
    assert report.achieved_sparsity == 0.5
    assert torch.equal(model.get_input_embeddings().weight, embeddings[0])  # embeddings and lm_head never
    assert torch.equal(model.get_output_embeddings().weight, embeddings[1])


@pytest.mark.parametrize(
    "arch,expected",
    [("llama", "mlp.down_proj"), ("opt", "fc2"), ("bloom", "mlp.dense_4h_to_h"), ("gpt2", "mlp.c_proj")],
)
def test_ffn_down_projection_is_found(arch, expected):
    _, blocks = find_blocks(tiny_model(arch, layers=1))
    assert ffn_pair(blocks[0])[0] == expected


def test_zero_sparsity_keeps_outputs(calib):
    model = tiny_model("qwen2")
    ref = model(calib.input_ids).logits
    prune_model(model, calib, PruneConfig(method="mwanda", sparsity=0.0), progress=False)
    assert torch.equal(model(calib.input_ids).logits, ref)


@pytest.mark.parametrize("nm", ["2:4", "4:8"])
def test_nm_structure_on_model(nm, calib):
    n, m = map(int, nm.split(":"))
    model = tiny_model("mistral")
    prune_model(model, calib, PruneConfig(method="mwanda", sparsity=n / m, structure=nm), progress=False)
    for lin in (mod for mod in find_blocks(model)[1].modules() if isinstance(mod, nn.Linear)):
        groups = (lin.weight == 0).reshape(lin.weight.shape[0], -1, m)
        assert (groups.sum(-1) == n).all()


@pytest.mark.parametrize("allocation", ["owl", "cwl"])
def test_allocation_hits_target_and_varies(allocation):
    model, calib = tiny_model("llama", layers=4, hidden_size=64, intermediate_size=128), tiny_calib(seqlen=24)
    report = prune_model(
        model, calib, PruneConfig(method="mwanda", sparsity=0.6, allocation=allocation), progress=False
    )
    allocated = [b["allocated_sparsity"] for b in report.blocks]
    params = [b["params"] for b in report.blocks]
    assert abs(sum(a * p for a, p in zip(allocated, params, strict=True)) / sum(params) - 0.6) < 1e-9
    assert abs(report.achieved_sparsity - 0.6) < 1e-3
    assert max(allocated) - min(allocated) == pytest.approx(2 * 0.08)
    D = [b["score"] for b in report.blocks]  # larger D keeps more weights
    assert allocated[D.index(max(D))] == min(allocated) and allocated[D.index(min(D))] == max(allocated)


def test_no_sequential_uses_dense_statistics(calib):
    model = tiny_model("llama")
    seq = prune_model(clone(model), calib, PruneConfig(method="wanda"), progress=False)
    dense = prune_model(clone(model), calib, PruneConfig(method="wanda", sequential=False), progress=False)
    assert seq.mask_sha256 != dense.mask_sha256
    # Block 0 sees the same inputs either way.
    first = [r["name"] for r in seq.layers if r["block"] == 0]
    assert first and dense.layers[: len(first)] == seq.layers[: len(first)]


def test_same_seed_same_hash_and_batch_size_invariance():
    model = tiny_model("llama")
    hashes = {
        prune_model(
            clone(model), tiny_calib(seed=1), PruneConfig(method="mwanda"), batch_size=bs, progress=False
        ).mask_sha256
        for bs in (1, 5, 12)
    }
    assert len(hashes) == 1
    other = prune_model(clone(model), tiny_calib(seed=2), PruneConfig(method="mwanda"), progress=False)
    assert other.mask_sha256 not in hashes


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_models(dtype, calib):
    model = tiny_model("llama", dtype=dtype)
    report = prune_model(model, calib, PruneConfig(method="mwanda", allocation="cwl"), progress=False)
    assert abs(report.achieved_sparsity - 0.5) < 1e-2 and report.model["dtype"] == str(dtype).split(".")[1]
    assert torch.isfinite(model(calib.input_ids).logits).all()


def test_include_exclude_patterns(calib):
    from mwanda.core.plan import CoverageWarning

    model = tiny_model("llama")
    with pytest.warns(CoverageWarning, match="only 44.4% of the blocks' weights"):
        report = prune_model(
            model,
            calib,
            PruneConfig(method="wanda", include=("*.mlp.*",), exclude=("*.up_proj",)),
            progress=False,
        )
    names = {r["name"].split(".", 3)[-1] for r in report.layers}
    assert names == {"mlp.gate_proj", "mlp.down_proj"}
    assert not (find_blocks(model)[1][0].self_attn.q_proj.weight == 0).any()
    assert report.coverage["fraction"] == pytest.approx(12288 / 27648) and report.warnings


def test_full_coverage_is_reported_without_warnings(calib):
    report = prune_model(tiny_model("qwen2"), calib, PruneConfig(method="wanda"), progress=False)
    assert report.coverage["fraction"] == 1.0 and report.coverage["unprunable"] == {}
    assert report.warnings == []


def test_fused_expert_tensors_are_refused_by_name(calib):
    """transformers 5 fuses Mixtral's experts into 3-D tensors that are no nn.Linear: refused."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from mwanda.core.blocks import ModelStructureError

    cfg = AutoConfig.for_model(
        "mixtral",
        hidden_size=32,
        intermediate_size=64,
        num_attention_heads=4,
        num_key_value_heads=2,
        num_local_experts=4,
        num_hidden_layers=1,
        vocab_size=128,
    )
    model = AutoModelForCausalLM.from_config(cfg).eval()
    before = [p.clone() for p in model.parameters()]
    with pytest.raises(ModelStructureError, match=r"model.layers.0.mlp.experts.gate_up_proj \[4, 128, 32\]"):
        prune_model(model, calib, PruneConfig(method="wanda"), progress=False)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_anova_and_language_aware_ria_run_and_differ(calib):
    model = tiny_model("llama")
    hashes = {
        prune_model(clone(model), calib, cfg, progress=False).mask_sha256
        for cfg in (
            PruneConfig(method="mwanda", variation="rms_cv"),
            PruneConfig(method="mwanda", variation="anova"),
            PruneConfig(method="ria"),
            PruneConfig(method="ria", language_aware=True),
        )
    }
    assert len(hashes) == 4


def test_language_aware_ria_without_extras_equals_ria(calib):
    model = tiny_model("llama")
    plain = prune_model(clone(model), calib, PruneConfig(method="ria"), progress=False)
    aware = prune_model(
        clone(model), calib, PruneConfig(method="ria", language_aware=True, alpha=0, beta=0), progress=False
    )
    assert plain.mask_sha256 == aware.mask_sha256


def test_offloaded_blocks_stop_before_pruning(tmp_path, calib):
    """device_map with a block on "disk" (accelerate's offload, meta weights paged in per forward)
    is refused up front, naming the block: in-place pruning could not reach the offloaded store."""
    from transformers import AutoModelForCausalLM

    from mwanda.core.blocks import ModelStructureError

    tiny_model("llama", layers=2).save_pretrained(tmp_path / "m")
    device_map = {
        "model.embed_tokens": "cpu",
        "model.layers.0": "cpu",
        "model.layers.1": "disk",
        "model.norm": "cpu",
        "model.rotary_emb": "cpu",
        "lm_head": "cpu",
    }
    model = AutoModelForCausalLM.from_pretrained(
        tmp_path / "m", device_map=device_map, offload_folder=tmp_path / "offload"
    )
    with pytest.raises(ModelStructureError, match=r"offloaded by device_map \(model.layers.1\)"):
        prune_model(model, calib, PruneConfig(method="wanda"), progress=False)
    assert not (model.model.layers[0].self_attn.q_proj.weight == 0).any()  # nothing was pruned


def test_auto_batch_size_fits_a_share_of_free_memory(monkeypatch, calib):
    """The largest batch whose activations fit the share: bounded by 1 and nsamples, growing with
    the free memory; and (as for any batch size) the masks are the batch-size-1 masks."""
    from mwanda.core import memory as memory_mod

    model = tiny_model("llama")
    per_seq = memory_mod.activation_bytes(model, 16)
    assert per_seq == 16 * (6 * 32 + 3 * 64 + 4 * 16) * 4
    for free, nsamples, expected in [
        (0, 12, 1),
        (4 * per_seq * 5, 12, 5),
        (4 * per_seq * 1000, 12, 8),
        (4 * per_seq * 1000, 6, 6),
    ]:
        monkeypatch.setattr(memory_mod, "free_memory", lambda device, free=free: free)
        assert memory_mod.auto_batch_size(model, nsamples, 16) == expected
    auto = prune_model(clone(model), calib, PruneConfig(method="mwanda"), batch_size=5, progress=False)
    one = prune_model(clone(model), calib, PruneConfig(method="mwanda"), batch_size=1, progress=False)
    assert auto.mask_sha256 == one.mask_sha256


def test_free_memory_is_read_from_the_os():
    from mwanda.core.memory import free_memory

    assert 0 < free_memory(torch.device("cpu")) < 2**50
