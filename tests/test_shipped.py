"""Shipped records: committed under results/shipped/, reused for the shared results folder only."""

from __future__ import annotations

import json

import pytest
from test_experiments import model_dir, smoke  # noqa: F401 - the module's tiny saved model

from mwanda.study import experiments, records, sweep


@pytest.fixture
def shared(tmp_path, monkeypatch):
    """A shared results folder and its shipped records, in a temporary place."""
    root = tmp_path / "results"
    monkeypatch.setattr(records, "RESULTS_DIR", root)
    monkeypatch.setattr(records, "SHIPPED_DIR", root / "shipped")
    return root


def test_a_shipped_record_serves_the_shared_folder_and_no_other(model_dir, shared, tmp_path, monkeypatch):  # noqa: F811
    cfg = smoke(model_dir, method="wanda", sparsity=0.5)
    rec = experiments.run(cfg, results_dir=tmp_path / "computed", progress=False)
    (shared / "shipped").mkdir(parents=True)
    (shared / "shipped" / f"{cfg.key()}.json").write_text(json.dumps(rec))

    def no_model(*a, **k):
        raise AssertionError("a shipped record must not be recomputed")

    monkeypatch.setattr(experiments, "_dense_model", no_model)
    assert experiments.run(cfg, results_dir=shared, progress=False) == rec
    assert not (shared / f"{cfg.key()}.json").exists()  # read in place, never copied
    assert sweep.pending([cfg], shared) == []
    assert sweep.pending([cfg], tmp_path / "other") == [cfg]  # another folder starts empty
    with pytest.raises(AssertionError, match="must not be recomputed"):
        experiments.run(cfg, results_dir=tmp_path / "other", progress=False)


def test_a_damaged_shipped_record_is_named_and_recomputed(model_dir, shared):  # noqa: F811
    cfg = smoke(model_dir, method="magnitude", sparsity=0.5)
    (shared / "shipped").mkdir(parents=True)
    (shared / "shipped" / f"{cfg.key()}.json").write_text('{"key": "')
    with pytest.warns(records.RecordWarning, match=r"shipped/.*is damaged"):
        rec = experiments.run(cfg, results_dir=shared, progress=False)
    assert rec["key"] == cfg.key() and (shared / f"{cfg.key()}.json").exists()
