"""Language statistics for notebook 02, checked against the driver's own numbers."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_calib, tiny_model

from mwanda.core import scores
from mwanda.study import analysis


@pytest.fixture(scope="module")
def stats():
    return analysis.dense_statistics(tiny_model("llama", layers=3), tiny_calib(seqlen=12), batch_size=5)


def test_shapes_and_languages(stats):
    assert (
        stats.languages == ["en", "de", "fr"]
        and len(stats.linears) == 3
        and stats.ffn_down == ["mlp.down_proj"] * 3
    )
    assert all(s.counts.tolist() == [48.0, 48.0, 48.0] for s in stats.block_inputs)  # 4 seqs x 12 tokens


def test_frames(stats):
    norms = analysis.language_norms(stats)
    assert len(norms) == 3 * 7 * 3 and (norms["rms"] > 0).all()
    v = analysis.variation(stats)
    s = stats.linears[1]["mlp.up_proj"]
    expected = scores.variation_rms_cv(scores.language_rms(s.counts, s.sumsq))
    got = v[(v["block"] == 1) & (v["layer"] == "mlp.up_proj")]["V"].to_numpy()
    assert torch.allclose(torch.from_numpy(got.copy()), expected)
    assert (analysis.variation(stats, "anova")["V"] >= 0).all()
    probs = analysis.activation_probability(stats)
    assert probs["p"].between(0, 1).all() and (probs["P"] >= probs["p"]).all()
    rho = analysis.correlation_by_block(stats)
    assert rho["rho"].between(-1, 1).all() and (rho["D"] == 1 - rho["rho"]).all()


def test_lape_entropy_extremes():
    p = torch.tensor([[0.5, 0.9], [0.5, 0.0], [0.5, 0.0]])
    ent = analysis.lape(p)
    assert ent[0] == pytest.approx(torch.log(torch.tensor(3.0)).item()) and ent[1] == pytest.approx(
        0.0, abs=1e-6
    )
