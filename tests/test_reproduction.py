"""The shipped records are what the code computes: three of them recomputed from scratch, every
number compared within figcheck's 1e-6 (the spot check of `make figures`, fixed choice)."""

from __future__ import annotations

import pytest

from mwanda.study import experiments, reproduce
from mwanda.study.results import config_of

# One record per kind of computation: Wanda's score, M-Wanda's score with CWL's layerwise
# allocation, SparseGPT's weight reconstruction; on the test split, first calibration seed.
CASES = {
    "wanda": {"method": "wanda", "sparsity": 0.5, "allocation": "uniform"},
    "mwanda+cwl": {"method": "mwanda", "sparsity": 0.6, "allocation": "cwl"},
    "sparsegpt": {"method": "sparsegpt", "sparsity": 0.5, "language_aware": False},
}


@pytest.fixture(scope="module")
def embedded_records():
    return reproduce.shipped_records("embedded")


@pytest.mark.parametrize("name", CASES)
def test_a_shipped_record_is_what_the_code_computes(embedded_records, name, tmp_path):
    want = CASES[name] | {"eval_split": "test", "seed": 0, "structure": "unstructured"}
    found = [r for r in embedded_records if all(r["config"].get(k) == v for k, v in want.items())]
    assert found, f"no shipped embedded {name} record: `make figures` then `make ship` ships them"
    old = min(found, key=lambda r: r["key"])
    cfg = config_of(old)
    assert cfg.key() == old["key"], "the shipped record is stale: the code now keys its config otherwise"
    new = experiments.run(cfg, results_dir=tmp_path, progress=False)
    assert reproduce.differences(old, new) == []
