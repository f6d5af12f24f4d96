"""The paper profile's data path, offline: Hub-schema stand-ins (tests/paper_standins.py), a
Llama-3.1-shaped random model in bfloat16, and the runner unchanged but for the sources."""

from __future__ import annotations

import pytest
from paper_standins import culturax, flores_plus, llama31_like

from mwanda import data
from mwanda.study import experiments

CALIB, EVAL = ["en", "de", "ja"], ["en", "de", "ja", "zh"]


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    from transformers import AutoTokenizer

    root = tmp_path_factory.mktemp("hub")
    tokenizer = AutoTokenizer.from_pretrained(data.EMBEDDED_DIR / "models" / "tiny-ml-llama")
    return {
        "model": llama31_like(root / "llama31-tiny", tokenizer),
        "calib": culturax(root, CALIB),
        "eval": flores_plus(root, EVAL),
    }


def paper(sources, **overrides):
    """The paper profile with every source swapped for its local stand-in, smoke-sized."""
    return experiments.make_config(
        "paper",
        model=str(sources["model"]),
        calib_dataset=str(sources["calib"]),
        eval_dataset=str(sources["eval"]),
        device="cpu",
        calib_langs=CALIB,
        eval_langs=EVAL,
        nsamples=6,
        seqlen=64,
        eval_max_chars=2000,
        tasks=[],
        batch_size=4,
        **overrides,
    )


def test_stand_ins_are_read_in_the_hubs_own_names(sources):
    """FLORES+ configs are ISO 639-3 + script ('test' is its 'devtest'), CulturaX's ISO 639-1."""
    flores = sources["eval"]
    assert (flores / "devtest" / "cmn_Hans.parquet").exists() and (
        flores / "dev" / "deu_Latn.parquet"
    ).exists()
    assert (sources["calib"] / "ja" / "ja_part_00000.parquet").exists()
    test = data.load_hub_text(str(flores), "de", "test", None)
    dev = data.load_hub_text(str(flores), "de", "dev", None)
    assert test.split("\n\n")[0] in data.load_paragraphs("de", "test").values()
    assert dev.split("\n\n")[0] in data.load_paragraphs("de", "dev").values()
    with pytest.raises(data.DataError, match="languages that have one"):
        data.load_hub_text(str(flores), "xx", "test", None)


def test_paper_profile_runs_end_to_end_on_the_stand_ins(sources, tmp_path):
    cfg = paper(sources, method="mwanda", sparsity=0.5)
    assert cfg.dtype == "bfloat16" and cfg.corpus == "hub"
    record = experiments.run(cfg, results_dir=tmp_path, progress=False)
    bpb = {r["language"]: r["value"] for r in record["metrics"] if r["metric"] == "bpb"}
    assert set(bpb) == set(EVAL) and all(0 < v < 100 for v in bpb.values())
    assert record["pruning"]["calibration"]["languages"] == CALIB
    assert abs(record["pruning"]["achieved_sparsity"] - 0.5) < 1e-3
    dense = experiments.run(cfg.dense(), results_dir=tmp_path, progress=False)
    dense_bpb = {r["language"]: r["value"] for r in dense["metrics"] if r["metric"] == "bpb"}
    assert dense_bpb.keys() == bpb.keys() and dense_bpb != bpb  # pruning changed the model
