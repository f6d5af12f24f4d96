"""Experiment records, the results store, and sweeps (tiny random model + embedded corpus)."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import fields, replace

import pandas as pd
import pytest
import torch
from conftest import tiny_model
from transformers import AutoTokenizer

from mwanda import data
from mwanda.cli import main
from mwanda.core import models
from mwanda.core.config import ConfigError, PruneConfig
from mwanda.core.models import ModelLoadError
from mwanda.core.stats import LanguageStats
from mwanda.data import EMBEDDED_DIR
from mwanda.io import umask
from mwanda.study import experiments, results, sweep
from mwanda.study.experiments import RecordWarning

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
        ({"method": "wanda2"}, "choose one of dense"),
        ({"eval_langs": ["de", "xx"]}, "unknown language(s) ['xx']"),
        ({"calib_langs": ["klingon"]}, "unknown UDHR tags ['klingon']"),
        (
            {"calib_langs": ["de", "eng"]},
            "UDHR declarations 'eng' ('en') are of languages the embedded corpus has",
        ),
        ({"calib_langs": ["de", "deu_1901"]}, "'deu_1901' ('de')"),  # the same language, another orthography
        ({"eval_split": "train"}, "use 'dev' (tuning) or 'test'"),
        ({"sparsity": 1.5}, "0 <= sparsity < 1"),
    ],
)
def test_bad_configs_fail_before_work(model_dir, overrides, message):
    with pytest.raises(ConfigError) as err:
        smoke(model_dir, **overrides)
    assert message in str(err.value)


def test_languages_the_model_never_saw_calibrate_on_their_udhr_text(model_dir):
    """Issue 12: calib_langs may add UDHR declarations of unseen languages to the corpus's."""
    from mwanda import udhr

    cfg = smoke(model_dir, method="wanda", calib_langs=["de", "afr", "ace"])
    texts = dict(experiments._calib_texts(experiments._calib_source(cfg), cfg.calib_langs, 6, 64))
    assert texts["afr"] == udhr.udhr_text("afr") and texts["ace"] == udhr.udhr_text("ace")
    assert texts["de"] == data.load_text("de", "calib")


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


def _frame(increases: dict[str, list[list[float]]]) -> pd.DataFrame:
    """A with_dense-like frame: label -> per seed, per language relative increases (bpb)."""
    return pd.DataFrame(
        [
            {
                "label": label,
                "seed": seed,
                "language": f"l{i}",
                "metric": "bpb",
                "sparsity": 0.5,
                "rel_increase": v,
            }
            for label, seeds in increases.items()
            for seed, values in enumerate(seeds)
            for i, v in enumerate(values)
        ]
    )


BASE = [[0.2, 0.2, 0.2], [0.2, 0.2, 0.5]]  # two seeds x three languages


@pytest.mark.parametrize(
    ("other", "verdict", "better", "gaps"),
    [
        ([[0.1, 0.1, 0.3], [0.1, 0.2, 0.4]], "holds", 2, (-0.1 / 3, -0.2 / 3)),
        ([[0.1, 0.1, 0.3], [0.3, 0.3, 0.6]], "within noise", 0, (-0.1 / 3, 0.3 / 3)),
        ([[0.3, 0.3, 0.5], [0.3, 0.3, 0.6]], "reversed", 0, (0.5 / 3, 0.3 / 3)),
    ],
)
def test_compare_counts_languages_and_pairs_seeds(other, verdict, better, gaps):
    """Per-language means over seeds decide ``languages_better``; per-seed means over languages
    decide the verdict; a third label in the frame is ignored."""
    row = results.compare(_frame({"a": BASE, "b": other, "c": [[9.0] * 3] * 2}), "a", "b").iloc[0]
    assert (row["sparsity"], row["base"], row["other"]) == (0.5, "a", "b")
    assert row["base_mean"] == pytest.approx(1.5 / 6)
    assert row["other_mean"] == pytest.approx(sum(map(sum, other)) / 6)
    assert row["difference"] == pytest.approx(row["other_mean"] - row["base_mean"])
    assert (row["languages_better"], row["languages"], row["seeds"]) == (better, 3, 2)
    assert row["seed_min"] == pytest.approx(min(gaps)) and row["seed_max"] == pytest.approx(max(gaps))
    assert row["verdict"] == verdict


def test_compare_pairs_a_one_seed_label_with_every_seed_of_the_other():
    """Magnitude pruning reads no data: its one run is compared with each calibration seed."""
    row = results.compare(_frame({"a": BASE, "b": [[0.1, 0.1, 0.1]]}), "a", "b").iloc[0]
    assert row["seeds"] == 2
    assert row["seed_min"] == pytest.approx(0.1 - 0.9 / 3)  # seed 1 of a: mean 0.3
    assert row["seed_max"] == pytest.approx(0.1 - 0.2)
    assert row["verdict"] == "holds"


def test_sparsegpt_variants_are_valid_configs_with_their_labels():
    for label, keys in sweep.SPARSEGPT_VARIANTS.items():
        cfg = experiments.make_config("embedded", **keys)
        experiments.validate(cfg)
        assert results.method_label(pd.Series(cfg.to_dict())) == label


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
    ).save_pretrained(copy)  # no cache to clear: the fingerprint cache keys on file sizes and times
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


# Keys of the default configs, computed before model resolution moved to models.resolve_model:
# existing results/ records must keep matching. Change them only with the embedded model's weights or
# SCORING_VERSION (2: the cross-entropy layout changed bits per byte by up to ~1e-6), or with the
# embedded profile's evaluation text (issue 25: eval_sample pages).
STABLE_KEYS = {
    ("embedded", "wanda"): "42119cae8b935ee19d23",
    ("smoke", "mwanda"): "a49baa7f2535d94cedcb",
}


def test_record_keys_of_existing_configs_do_not_change(tmp_path, monkeypatch):
    def keys():
        return {(p, m): experiments.make_config(p, method=m).key() for p, m in STABLE_KEYS}

    assert keys() == STABLE_KEYS
    monkeypatch.chdir(tmp_path)  # the repository-relative default model resolves from anywhere
    assert keys() == STABLE_KEYS


def fake_hub_cache(root, repo_id: str, commit: str) -> None:
    """The Hub cache layout huggingface_hub reads offline: refs/main -> snapshots/<commit>/."""
    repo = root / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True, exist_ok=True)
    (repo / "snapshots" / commit / "config.json").write_text("{}")


def test_a_hub_models_key_holds_the_commit_its_revision_resolves_to(tmp_path, monkeypatch):
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelLoadError, match="download it once"):
        experiments.make_config("paper").key()  # offline and not cached: no key, no silent reuse
    fake_hub_cache(tmp_path, "meta-llama/Llama-3.1-8B", "a" * 40)
    cfg = experiments.make_config("paper")
    assert cfg.model_revision == "main" and cfg.normalized()["model_sha256"] == "a" * 40
    first = cfg.key()
    fake_hub_cache(tmp_path, "meta-llama/Llama-3.1-8B", "b" * 40)  # a new upload under the same name
    assert experiments.make_config("paper").key() != first


@pytest.mark.parametrize("damaged", ["{}", '{"key": "'])
def test_damaged_record_is_recomputed_by_run_and_sweep(model_dir, tmp_path, damaged):
    cfg = smoke(model_dir, method="dense")
    path = experiments.record_path(cfg, tmp_path)
    path.write_text(damaged)
    with pytest.warns(RecordWarning, match=re.escape(str(path)) + ".*counts as pending"):
        assert [c.key() for c in sweep.pending([cfg], tmp_path)] == [cfg.key()]
    with pytest.warns(RecordWarning, match=re.escape(str(path)) + ".*recomputing it"):
        (rec,) = sweep.run_local([cfg], tmp_path, progress=False)
    assert experiments.read_record(path) == rec and rec["key"] == cfg.key()
    assert sweep.pending([cfg], tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # rewritten in place, no temp left


@pytest.mark.parametrize(
    "line,message",
    [
        ("nsamples: many", "nsamples='many' must be an integer"),
        ("batch_size: 2.5", "batch_size=2.5 must be an integer or 'auto'"),
        ("seed: abc", "seed='abc' must be an integer"),
        ("eval_langs: 5", "eval_langs=5 must be a list of strings"),
        ("sparsity: half", "sparsity='half' must be a number"),
        ("udhr: 1", "udhr=1 must be true or false"),
        ("eval_max_chars: lots", "eval_max_chars='lots' must be an integer or null"),
    ],
)
def test_config_file_types_fail_naming_file_key_and_type(tmp_path, line, message):
    path = tmp_path / "c.yaml"
    path.write_text(f"profile: smoke\n{line}\n")
    with pytest.raises(ConfigError) as err:
        experiments.load_config(path)
    assert str(err.value) == f"{path}: {message}."


def test_config_file_lists_fill_tuple_fields(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("profile: smoke\nmethod: wanda\ncalib_langs: [en, de]\neval_langs: fr\ntasks: []\n")
    cfg = experiments.load_config(path)
    assert (cfg.calib_langs, cfg.eval_langs, cfg.tasks) == (("en", "de"), ("fr",), ())
    assert experiments.TUPLE_FIELDS == ("include", "exclude", "calib_langs", "eval_langs", "tasks")


@pytest.mark.parametrize(
    "text,where,problem",
    [
        ("profile: smoke\nmethod: [wanda\nsparsity: 0.5\n", "line 3, column 9", "expected ',' or ']'"),
        ("profile: smoke\n  method: wanda\n", "line 2, column 9", "mapping values are not allowed"),
    ],
)
def test_yaml_syntax_error_names_file_and_line(tmp_path, text, where, problem):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    for read in (experiments.load_config, sweep.load_grid):
        with pytest.raises(ConfigError) as err:
            read(path)
        assert str(err.value).startswith(f"{path}, {where}: invalid YAML (") and problem in str(err.value)


def test_grid_file_errors_name_the_file(tmp_path):
    path = tmp_path / "grid.yaml"
    path.write_text("profile: smoke\ngrid: {method: [wanda, wanda2]}\n")
    with pytest.raises(ConfigError, match=re.escape(f"{path}: method='wanda2' is not supported")):
        sweep.load_grid(path)
    path.write_text("profile: smoke\nbase: {method: wanda}\ngrid: {method: [dense]}\n")
    with pytest.raises(ConfigError, match=re.escape(f"{path}: ['method'] are in both base and grid")):
        sweep.load_grid(path)
    path.write_text("profile: smoke\nbase: [method, wanda]\n")
    with pytest.raises(ConfigError, match="base must be a mapping"):
        sweep.load_grid(path)


def fake_model_dir(path, weights: bytes = b"weights"):
    path.mkdir(parents=True)
    (path / "config.json").write_text("{}")
    (path / "model.safetensors").write_bytes(weights)
    return path


def test_model_relative_to_working_directory_is_hashed_and_loaded_as_itself(tmp_path, monkeypatch):
    local = fake_model_dir(tmp_path / "work" / "models" / "m").resolve()
    monkeypatch.chdir(tmp_path / "work")
    assert experiments.model_fingerprint("models/m") == experiments.model_fingerprint(str(local))
    assert experiments.model_fingerprint("models/m") != experiments.model_fingerprint(
        str(fake_model_dir(tmp_path / "other", b"other weights"))
    )
    loaded = []
    monkeypatch.setattr(models, "load_model", lambda source, **kw: loaded.append(source) or ("m", "t"))
    # the per-process model cache keys on the resolved directory, unique to this test: nothing to clear
    assert experiments._dense_model("models/m", "float32", "cpu") == ("m", "t")
    assert loaded == [local]


def test_missing_local_model_is_an_error_never_a_hub_lookup(tmp_path, monkeypatch):
    def no_hub(*a, **k):
        raise AssertionError("a missing local model must not be looked up on the Hub")

    monkeypatch.setattr(models, "load_model", no_hub)
    for call in (
        lambda: experiments.model_fingerprint("data/models/no-such-model"),
        lambda: experiments._dense_model("./no-such-model", "float32", "cpu"),
        lambda: experiments.make_config("smoke", model="data/models/no-such-model"),
    ):
        with pytest.raises(ModelLoadError, match="does not exist"):
            call()
    path = tmp_path / "c.yaml"
    path.write_text("profile: smoke\nmodel: data/models/no-such-model\n")
    with pytest.raises(
        ModelLoadError, match=re.escape(f"{path}: model directory 'data/models/no-such-model'")
    ):
        experiments.load_config(path)
    with pytest.raises(ModelLoadError, match="cannot resolve the revision"):  # a Hub id: its commit
        experiments.model_fingerprint("meta-llama/Llama-3.1-8B")


def test_pruning_hyperparameters_are_declared_once():
    """ExperimentConfig inherits every PruneConfig field (default, help, range): only ``method``
    is redeclared (it adds "dense"), so a new hyperparameter touches mwanda/core/config.py alone."""
    import ast
    import inspect

    exp = {f.name: f for f in fields(experiments.ExperimentConfig)}
    for f in fields(PruneConfig):
        assert exp[f.name].default == f.default and exp[f.name].metadata["help"], f.name
    body = ast.parse(inspect.getsource(experiments.ExperimentConfig)).body[0].body
    declared = {n.target.id for n in body if isinstance(n, ast.AnnAssign)}
    assert declared & {f.name for f in fields(PruneConfig)} == {"method"}


def test_a_new_hyperparameter_at_its_default_keeps_old_keys():
    """include/exclude came after the version-1 records: at their default they stay out of the
    key; set, they change it."""
    cfg = experiments.make_config("smoke", method="mwanda")
    assert "include" not in cfg.normalized() and "exclude" not in cfg.normalized()
    other = experiments.make_config("smoke", method="mwanda", exclude=["*.down_proj"])
    assert other.normalized()["exclude"] == ["*.down_proj"] and other.key() != cfg.key()


def test_batch_size_auto_resolves_per_use_and_keeps_the_key(model_dir, tmp_path):
    """'auto' (the paper profile's) picks a batch per pass; batch size is not part of the key,
    and masks do not depend on it."""
    from mwanda.core.memory import AUTO_BATCH_MAX

    auto = smoke(model_dir, method="wanda", batch_size="auto")
    assert auto.key() == smoke(model_dir, method="wanda", batch_size=2).key()
    model, _ = experiments.dense_model(auto)
    assert experiments.resolve_batch_size("auto", model, 3, 64) == 3  # a tiny model: capped by nsamples
    assert 1 <= experiments.resolve_batch_size("auto", model, 100, 64) <= AUTO_BATCH_MAX
    assert experiments.resolve_batch_size(5, model, 3, 64) == 5
    a = experiments.run(auto, results_dir=tmp_path / "a", progress=False)
    b = experiments.run(
        smoke(model_dir, method="wanda", batch_size=1), results_dir=tmp_path / "b", progress=False
    )
    assert a["pruning"]["mask_sha256"] == b["pruning"]["mask_sha256"]


def test_dense_statistics_are_computed_once_then_read_back_equal(model_dir, tmp_path, monkeypatch):
    from mwanda.study import analysis

    cfg = smoke(model_dir)
    first = experiments.dense_statistics(cfg, tmp_path)
    (path,) = (tmp_path / "dense_statistics").glob("*.pt")
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask()

    def no_recompute(*a, **k):
        raise AssertionError("cached statistics must be read, not recomputed")

    monkeypatch.setattr(analysis, "dense_statistics", no_recompute)
    again = experiments.dense_statistics(cfg, tmp_path)
    assert again.languages == first.languages and again.ffn_down == first.ffn_down
    for a, b in zip(
        [*first.block_inputs, *first.linears], [*again.block_inputs, *again.linears], strict=True
    ):
        pairs = [(a, b)] if isinstance(a, LanguageStats) else [(a[k], b[k]) for k in a]
        for x, y in pairs:
            for name in ("counts", "sumsq", "sums", "active"):
                u, v = getattr(x, name), getattr(y, name)
                assert (u is None and v is None) or torch.equal(u, v)
    # another calibration seed is another set of statistics
    with pytest.raises(AssertionError, match="read, not recomputed"):
        experiments.dense_statistics(replace(cfg, seed=1), tmp_path)
