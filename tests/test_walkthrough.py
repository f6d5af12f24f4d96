"""The walkthrough's one-layer view (notebook 03) against the pruning engine itself."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import tiny_calib, tiny_model

from mwanda.core.config import PruneConfig
from mwanda.core.prune import prune_model
from mwanda.study import analysis, walkthrough

DOWN = "mlp.down_proj"


@pytest.fixture(scope="module")
def setup():
    model, calib = tiny_model("llama", layers=2), tiny_calib(seqlen=12)
    return model, calib, analysis.dense_statistics(model, calib, batch_size=4)


@pytest.mark.parametrize("method, alpha, beta", [("wanda", 0.0, 0.0), ("mwanda", 2.0, 1.0)])
def test_masks_are_the_engines_masks(setup, method, alpha, beta):
    """Without sequential pruning every block sees dense statistics, as the walkthrough does."""
    model, calib, st = setup
    pruned = copy.deepcopy(model)
    cfg = PruneConfig(method=method, sparsity=0.6, alpha=alpha, beta=beta, sequential=False)
    prune_model(pruned, calib, cfg, progress=False)
    for block in (0, 1):
        walk = walkthrough.walk_layer(model, st, block, DOWN, alpha=2.0, beta=1.0, sparsity=0.6)
        engine = walkthrough.layer_weight(pruned, block, DOWN) == 0
        assert torch.equal(engine, walk.wanda_mask if method == "wanda" else walk.mwanda_mask)


def test_no_language_terms_no_difference(setup):
    model, _, st = setup
    walk = walkthrough.walk_layer(model, st, 1, DOWN, alpha=0.0, beta=0.0, sparsity=0.5)
    assert torch.equal(walk.wanda_mask, walk.mwanda_mask)  # equal token counts: bit-identical scores
    assert walkthrough.disagreement(walk)["masks_differ"] == 0.0
    assert torch.equal(walk.scale, torch.ones_like(walk.scale))


def test_disagreement_and_features_add_up(setup):
    model, _, st = setup
    walk = walkthrough.walk_layer(model, st, 0, DOWN, alpha=2.0, beta=1.0, sparsity=0.6)
    d_out, d_in = walk.weight.shape
    assert (walk.wanda_mask.sum(1) == int(d_in * 0.6)).all() and (
        walk.mwanda_mask.sum(1) == int(d_in * 0.6)
    ).all()
    shares = walkthrough.disagreement(walk)
    assert shares["kept_only_by_mwanda"] == shares["kept_only_by_wanda"] > 0
    feats = walkthrough.features(walk)
    assert feats["rescued"].sum() == round(shares["kept_only_by_mwanda"] * d_out * d_in)
    expected = (1 + 2.0 * walk.V) * (1 + 1.0 * walk.P)
    assert torch.allclose(torch.from_numpy(feats["scale"].to_numpy().copy()), expected)
    profile = walkthrough.language_profile(walk, int(feats["V"].idxmax()))
    assert list(profile["language"]) == st.languages and abs(profile["ratio_to_mean"].mean() - 1) < 1e-9


def test_attention_layers_have_no_activation_probability(setup):
    model, _, st = setup
    walk = walkthrough.walk_layer(model, st, 0, "self_attn.q_proj", alpha=1.0, beta=1.0, sparsity=0.5)
    assert walk.P is None and "P" not in walkthrough.features(walk)
    with pytest.raises(KeyError, match="has no prunable linear 'mlp.gate'"):
        walkthrough.layer_weight(model, 0, "mlp.gate")
