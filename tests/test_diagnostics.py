"""Outlier, mask-overlap and tie diagnostics (notebook 09) on hand-made tensors."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_calib, tiny_model

from mwanda.study import diagnostics as dg


def test_flat_norms_have_no_outliers_and_one_spike_is_found():
    flat = dg.norm_outliers(torch.ones(100))
    assert flat["max_over_median"] == 1.0 and flat["share_outliers"] == 0.0
    spiked = torch.ones(100)
    spiked[7] = 50.0
    out = dg.norm_outliers(spiked)
    assert out["max_over_median"] == 50.0 and out["share_outliers"] == 0.01
    assert out["kurtosis"] > 90  # one point far out: (n - 1)^2 / (n - 1) + ... = 98.01 for n = 100
    assert out["kurtosis"] == pytest.approx(98.0102, rel=1e-4)


def test_row_mask_prunes_the_lowest_scores_per_row():
    score = torch.tensor([[3.0, 1.0, 2.0, 0.5], [1.0, 1.0, 1.0, 1.0]])
    mask = dg.row_mask(score, 0.5)
    assert mask.tolist() == [[False, True, False, True], [True, True, False, False]]  # ties: by position


def test_mask_overlap_is_one_for_flat_norms_and_drops_for_an_outlier_feature():
    torch.manual_seed(0)
    W = torch.randn(64, 32)
    assert dg.mask_overlap(W, torch.ones(32), 0.5) == 1.0
    norms = torch.ones(32)
    norms[3] = 100.0  # Wanda keeps (nearly) every weight of feature 3, magnitude about half of them
    wanda_kept = (~dg.row_mask(W.abs() * norms, 0.5))[:, 3].float().mean()
    magnitude_kept = (~dg.row_mask(W.abs(), 0.5))[:, 3].float().mean()
    assert wanda_kept > 0.95 and magnitude_kept < 0.7
    assert dg.mask_overlap(W, norms, 0.5) < 1.0


def test_magnitude_ties_count_runs_across_the_threshold():
    W = torch.tensor([[0.1, -0.1, 0.2, 0.3], [0.1, 0.2, 0.3, 0.4]])
    ties = dg.magnitude_ties(W, 0.5)  # row 0: sorted 0.1 0.1 | 0.2 0.3 -> no tie at the cut
    assert ties == {"distinct_per_row": 3.5, "rows_tied_at_threshold": 0.0, "weights_in_tied_runs": 0.0}
    W = torch.tensor([[0.1, 0.2, -0.2, 0.2], [0.1, 0.2, 0.3, 0.4]])
    ties = dg.magnitude_ties(W, 0.5)  # row 0: 0.1 0.2 | 0.2 0.2: three weights of 0.2, one is pruned
    assert ties == {"distinct_per_row": 3.0, "rows_tied_at_threshold": 0.5, "weights_in_tied_runs": 3 / 8}


def test_layer_table_covers_every_linear_of_every_block():
    from mwanda.study.analysis import dense_statistics

    model, calib = tiny_model("gemma3_text"), tiny_calib()
    st = dense_statistics(model, calib, batch_size=4)
    table = dg.layer_table(model, st.linears, 0.5)
    assert len(table) == 3 * 7 and set(table["block"]) == {0, 1, 2}
    assert table[["max_over_median", "kurtosis", "mask_overlap"]].notna().all().all()
    assert ((table["mask_overlap"] > 0) & (table["mask_overlap"] <= 1)).all()
