"""Experiment records, the results store, and sweeps (tiny random model + embedded corpus)."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import tiny_model
from transformers import AutoTokenizer

from mwanda import experiments, results, sweep
from mwanda.cli import main
from mwanda.config import ConfigError
from mwanda.data import EMBEDDED_DIR

TOKENIZER_DIR = EMBEDDED_DIR / "models" / "tiny-ml-llama"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A 2-block random Llama with the embedded tokenizer, saved like a real checkpoint."""
    tok = AutoTokenizer.from_pretrained(TOKENIZER_DIR)
    path = tmp_path_factory.mktemp("exp") / "tiny"
    tiny_model("llama", layers=2, vocab_size=len(tok), max_position_embeddings=64).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def smoke(model_dir, **kw):
    return experiments.make_config("smoke", model=str(model_dir), **kw)


def test_run_writes_record_then_reuses_it(model_dir, tmp_path, monkeypatch):
    cfg = smoke(model_dir, method="mwanda", sparsity=0.5)
    rec = experiments.run(cfg, results_dir=tmp_path, progress=False)
    path = tmp_path / f"{cfg.key()}.json"
    assert json.loads(path.read_text())["key"] == rec["key"] == cfg.key()
    langs = {r["language"] for r in rec["metrics"]}
    metrics = {r["metric"] for r in rec["metrics"]}
    assert langs == set(cfg.eval_langs) and {"bpb", "ppl", "bpc", "udhr_bpb"} <= metrics
    assert abs(rec["pruning"]["achieved_sparsity"] - 0.5) < 1e-3
    assert rec["provenance"]["torch"] and rec["provenance"]["corpus_manifest_sha256"]

    def no_model(*a, **k):
        raise AssertionError("a cached record must not load the model")

    monkeypatch.setattr(experiments, "_dense_model", no_model)
    assert experiments.run(cfg, results_dir=tmp_path, progress=False) == rec
    with pytest.raises(AssertionError, match="must not load"):
        experiments.run(cfg, force=True, results_dir=tmp_path, progress=False)


def test_keys_are_stable_and_normalized(model_dir):
    a = smoke(model_dir, method="wanda", sparsity=0.5)
    assert (
        a.key() == smoke(model_dir, method="wanda", sparsity=0.5, batch_size=3).key()
    )  # no effect on results
    assert a.key() != smoke(model_dir, method="wanda", sparsity=0.6).key()
    assert a.key() != smoke(model_dir, method="wanda", sparsity=0.5, seed=1).key()
    # The dense baseline ignores pruning and calibration settings: one record serves all.
    assert smoke(model_dir, method="dense", alpha=0.3, seed=4).key() == smoke(model_dir, method="dense").key()
    assert a.dense().key() == smoke(model_dir, method="dense").key()


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"methd": "wanda"}, "unknown config key(s) ['methd']"),
        ({"method": "sparsegpt"}, "choose one of dense"),
        ({"eval_langs": ["de", "xx"]}, "unknown language(s) ['xx']"),
        ({"calib_langs": ["klingon"]}, "unknown language(s) ['klingon']"),
        ({"eval_split": "train"}, "use 'dev' (tuning) or 'test'"),
        ({"sparsity": 1.5}, "must be in [0, 1)"),
    ],
)
def test_bad_configs_fail_before_work(model_dir, overrides, message):
    with pytest.raises(ConfigError) as err:
        smoke(model_dir, **overrides)
    assert message in str(err.value)


def test_unknown_profile():
    with pytest.raises(ConfigError, match="unknown profile 'laptop'"):
        experiments.make_config("laptop")


def test_unwritable_results_dir(model_dir, tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="choose another"):
        experiments.run(
            smoke(model_dir, method="dense"), results_dir=tmp_path / "file" / "sub", progress=False
        )


def test_tokenizer_that_does_not_match_the_model(model_dir, tmp_path):
    other = tmp_path / "small-vocab"
    shutil.copytree(model_dir, other)
    tiny_model("llama", layers=2, vocab_size=100).save_pretrained(other)
    with pytest.raises(ConfigError, match="do not belong together"):
        experiments.run(smoke(other, method="dense"), results_dir=tmp_path / "r", progress=False)


def test_crash_while_writing_keeps_earlier_records(model_dir, tmp_path, monkeypatch):
    first = experiments.run(smoke(model_dir, method="dense"), results_dir=tmp_path, progress=False)
    before = sorted(p.name for p in tmp_path.iterdir())

    def crash(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(
        experiments, "atomic_write_text", lambda path, text: crash() if "metrics" in text else None
    )
    with pytest.raises(KeyboardInterrupt):
        experiments.run(smoke(model_dir, method="magnitude"), results_dir=tmp_path, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert json.loads((tmp_path / before[0]).read_text()) == first


def test_results_frame_dense_join_and_equity(model_dir, tmp_path):
    for method in ("dense", "magnitude", "wanda"):
        experiments.run(smoke(model_dir, method=method), results_dir=tmp_path, progress=False)
    df = results.load(tmp_path)
    assert set(df["method"]) == {"dense", "magnitude", "wanda"}
    assert len(df) == 3 * len(df["language"].unique()) * len(df["metric"].unique())
    joined = results.with_dense(df)
    assert joined["dense"].notna().all() and set(joined["method"]) == {"magnitude", "wanda"}
    row = joined[(joined["method"] == "wanda") & (joined["metric"] == "bpb")].iloc[0]
    assert row["rel_increase"] == pytest.approx(row["value"] / row["dense"] - 1)
    eq = results.equity(joined, "bpb")
    assert set(eq["method"]) == {"magnitude", "wanda"}
    for _, r in eq.iterrows():
        per_lang = joined[(joined["method"] == r["method"]) & (joined["metric"] == "bpb")]
        assert r["worst_rel_increase"] == pytest.approx(per_lang["rel_increase"].max())
        assert r["spread"] == pytest.approx(per_lang["rel_increase"].max() - per_lang["rel_increase"].min())
    assert len(results.load(tmp_path, method="wanda")["method"].unique()) == 1


def test_sweep_expands_dedups_and_skips_done(model_dir, tmp_path):
    spec = {
        "profile": "smoke",
        "base": {"model": str(model_dir)},
        "grid": {"method": ["dense", "magnitude"], "alpha": [0.0, 1.0]},
    }
    configs = sweep.expand(spec)
    assert len(configs) == 4 - 1  # the two dense configs are one
    sweep.run_local(configs[:1], tmp_path, progress=False)
    assert [c.key() for c in sweep.pending(configs, tmp_path)] == [c.key() for c in configs[1:]]
    with pytest.raises(ConfigError, match="non-empty list"):
        sweep.expand({"grid": {"sparsity": 0.5}})


def test_sweep_with_submitit_local_executor(model_dir, tmp_path):
    grid = tmp_path / "grid.yaml"
    grid.write_text(
        f"profile: smoke\nbase: {{model: {model_dir}, method: magnitude}}\ngrid: {{sparsity: [0.3, 0.6]}}\n"
    )
    assert main(["sweep", str(grid), "--results", str(tmp_path / "r"), "--executor", "local"]) == 0
    df = results.load(tmp_path / "r")
    assert sorted(df["sparsity"].unique()) == [0.3, 0.6]
    assert main(["sweep", str(grid), "--results", str(tmp_path / "r"), "--dry-run"]) == 0


def test_cli_run(model_dir, tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"profile: smoke\nmodel: {model_dir}\nmethod: wanda\nsparsity: 0.5\n")
    assert main(["run", str(cfg), "--results", str(tmp_path / "r")]) == 0
    assert "record:" in capsys.readouterr().out
    cfg.write_text("profile: smoke\nsparsty: 0.5\n")
    assert main(["run", str(cfg), "--results", str(tmp_path / "r")]) == 2
    assert "unknown config key(s) ['sparsty']" in capsys.readouterr().err


def test_run_grid_joins_dense(model_dir, tmp_path):
    df = sweep.run_grid(
        "smoke",
        tmp_path,
        base={"model": str(model_dir)},
        progress=False,
        method=["magnitude"],
        sparsity=[0.2, 0.4],
    )
    assert sorted(df["sparsity"].unique()) == [0.2, 0.4] and df["dense"].notna().all()
    dense = experiments.run(smoke(model_dir, method="dense"), results_dir=tmp_path, progress=False)
    dense_bpb = {r["language"]: r["value"] for r in dense["metrics"] if r["metric"] == "bpb"}
    rows = df[df["metric"] == "bpb"]
    assert len(rows) == 2 * len(dense_bpb)
    assert all(r.dense == dense_bpb[r.language] for r in rows.itertuples())


def test_new_weights_at_the_same_path_get_a_new_key(model_dir, tmp_path):
    copy = tmp_path / "m"
    shutil.copytree(model_dir, copy)
    before = smoke(copy, method="dense").key()
    tiny_model(
        "llama", layers=2, seed=7, vocab_size=len(AutoTokenizer.from_pretrained(copy))
    ).save_pretrained(copy)
    experiments.model_fingerprint.cache_clear()
    assert smoke(copy, method="dense").key() != before


def test_missing_evaluation_data_fails_before_the_model_loads(model_dir, tmp_path, monkeypatch):
    def missing(*a, **k):
        raise FileNotFoundError("data/corpus/test/de.jsonl.gz is missing; run `make corpus`")

    def no_model(*a, **k):
        raise AssertionError("the model must not be loaded")

    monkeypatch.setattr(experiments, "_eval_texts_cached", missing)
    monkeypatch.setattr(experiments, "_dense_model", no_model)
    with pytest.raises(FileNotFoundError, match="make corpus"):
        experiments.run(smoke(model_dir, method="wanda"), results_dir=tmp_path, progress=False)
