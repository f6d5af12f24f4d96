"""The primary claims across training seeds (notebook 10): which models, and the spread."""

import pandas as pd
import pytest

from mwanda.build import tiny_model
from mwanda.study import replicates


def test_training_replicates_are_the_tiny_models_seed_folders():
    models = replicates.training_replicates(replicates.TINY_MODEL, [0, 1, 2])
    assert models == {
        0: "data/models/tiny-ml-llama",
        1: "data/models/tiny-ml-llama-seed1",
        2: "data/models/tiny-ml-llama-seed2",
    }
    for n, path in models.items():  # the same folders `make model SEED=N` trains into
        assert tiny_model.model_dir(n).as_posix().endswith(path)
    assert replicates.training_replicates("gemma-3-270m", [0, 1, 2]) == {0: "gemma-3-270m"}


def test_spread_gives_each_claims_effects_in_points_their_range_and_how_many_hold():
    table = pd.DataFrame(
        {
            "claim": ["P2", "P3"] * 3,
            "training_seed": [0, 0, 1, 1, 2, 2],
            "difference": [-0.001, -0.004, 0.002, -0.003, 0.0, -0.005],
            "verdict": ["within noise", "holds", "within noise", "holds", "within noise", "within noise"],
        }
    )
    out = replicates.spread(table)
    assert out.loc["P2", ["seed 0", "seed 1", "seed 2"]].tolist() == pytest.approx([-0.1, 0.2, 0.0])
    assert (out.loc["P3", "mean"], out.loc["P3", "min"], out.loc["P3", "max"]) == pytest.approx(
        (-0.4, -0.5, -0.3)
    )
    assert out["models_holding"].tolist() == [0, 2] and out["models"].tolist() == [3, 3]
