"""Shipped records: the compact Parquet form, reused for the shared results folder only, and the
tools that ship, check and reproduce them (mwanda.study.shipped, mwanda.study.reproduce)."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
import yaml
from test_experiments import model_dir, smoke  # noqa: F401 - the module's tiny saved model

from mwanda.study import experiments, records, reproduce, shipped, sweep


@pytest.fixture
def shared(tmp_path, monkeypatch):
    """A shared results folder and its shipped records, in a temporary place."""
    root = tmp_path / "results"
    monkeypatch.setattr(records, "RESULTS_DIR", root)
    monkeypatch.setattr(shipped, "SHIPPED_DIR", root / "shipped")
    return root


@pytest.fixture(scope="module")
def computed(model_dir, tmp_path_factory):  # noqa: F811
    """Two smoke records (Wanda, magnitude) of the same evaluation text, as the runner wrote them."""
    out = tmp_path_factory.mktemp("computed")
    recs = [
        experiments.run(smoke(model_dir, method=m, sparsity=0.5), results_dir=out, progress=False)
        for m in ("wanda", "magnitude")
    ]
    return out, recs


def test_a_record_ships_and_reads_back_bit_for_bit(computed, tmp_path):
    out, recs = computed
    paths = [shipped.write(rec, tmp_path) for rec in recs]
    for rec, path in zip(recs, paths, strict=True):
        assert path.name == f"{rec['key']}.parquet"
        back = shipped.read(path)
        assert back == rec  # floats are float64 both ways: equal, not just close
        assert json.dumps(back, sort_keys=True) == json.dumps(rec, sort_keys=True)
    # the byte counts are the same text for both records: stored once
    assert len(list((tmp_path / "texts").glob("*.parquet"))) == 1
    n = sum(len(p["nll"]) for langs in recs[0]["paragraphs"].values() for p in langs.values())
    assert pq.read_table(paths[0]).num_rows == n > 0
    assert sum(p.stat().st_size for p in paths) < sum((out / f"{r['key']}.json").stat().st_size for r in recs)


@pytest.mark.parametrize(
    "damage, problem",
    [
        (lambda p: p.write_bytes(p.read_bytes()[:-40]), "not a shipped record"),
        (lambda p: next((p.parent / "texts").glob("*")).unlink(), "its text .* cannot be read"),
        (lambda p: p.rename(p.with_name("0" * 20 + ".parquet")), "is not its file name"),
    ],
)
def test_a_damaged_shipped_record_is_refused_naming_the_file(computed, tmp_path, damage, problem):
    path = shipped.write(computed[1][0], tmp_path)
    damage(path)
    path = next(tmp_path.glob("*.parquet"))
    with pytest.raises(records.RecordError, match=problem) as err:
        shipped.read(path)
    assert str(path) in str(err.value)


def test_only_a_checked_record_ships(computed, tmp_path):
    rec = dict(computed[1][0], metrics=[{"language": "en", "metric": "bpb", "value": "1.2"}])
    with pytest.raises(ValueError, match="only checked records ship"):
        shipped.write(rec, tmp_path)
    assert not list(tmp_path.iterdir())


def test_a_shipped_record_serves_the_shared_folder_and_no_other(
    model_dir,  # noqa: F811
    computed,
    shared,
    tmp_path,
    monkeypatch,
):
    rec = computed[1][0]
    cfg = smoke(model_dir, method="wanda", sparsity=0.5)
    shipped.write(rec, shared / "shipped")

    def no_model(*a, **k):
        raise AssertionError("a shipped record must not be recomputed")

    monkeypatch.setattr(experiments, "_dense_model", no_model)
    log = tmp_path / "nb.records"
    monkeypatch.setenv(experiments.RECORD_LOG, str(log))
    assert experiments.run(cfg, results_dir=shared, progress=False) == rec
    assert not (shared / f"{cfg.key()}.json").exists()  # read in place, never copied
    assert log.read_text() == f"{cfg.key()}\tshipped\n"
    assert sweep.pending([cfg], shared) == []
    assert sweep.pending([cfg], tmp_path / "other") == [cfg]  # another folder starts empty
    with pytest.raises(AssertionError, match="must not be recomputed"):
        experiments.run(cfg, results_dir=tmp_path / "other", progress=False)


def test_a_damaged_shipped_record_is_named_and_recomputed(model_dir, computed, shared, tmp_path, monkeypatch):  # noqa: F811
    cfg = smoke(model_dir, method="magnitude", sparsity=0.5)
    path = shipped.write(computed[1][1], shared / "shipped")
    path.write_bytes(b"PAR1 cut short")
    monkeypatch.setenv(experiments.RECORD_LOG, str(tmp_path / "nb.records"))
    with pytest.warns(records.RecordWarning, match=r"shipped/.*is damaged"):
        rec = experiments.run(cfg, results_dir=shared, progress=False)
    assert reproduce.differences(computed[1][1], rec) == []
    assert rec["pruning"]["mask_sha256"] == computed[1][1]["pruning"]["mask_sha256"]
    assert (shared / f"{cfg.key()}.json").exists()
    assert reproduce.read_logs(tmp_path) == {"nb": [(cfg.key(), "computed")]}
    assert reproduce.status(tmp_path) == [
        "nb: 1 of 1 records not shipped (new configs, or stale: their key no longer matches the code);"
        " `make ship` ships them"
    ]
    assert reproduce.ship([cfg.key()], shared) and shipped.read(path) == rec  # `make ship` mends it


def test_differences_names_every_number_beyond_the_tolerance(computed):
    rec = computed[1][0]
    assert reproduce.differences(rec, rec) == []
    new = json.loads(json.dumps(rec))
    new["metrics"][0]["value"] += 1e-3
    lang = next(iter(new["paragraphs"]["bpb"]))
    new["paragraphs"]["bpb"][lang]["nll"][1] *= 1 + 1e-7  # within 1e-6: not a difference
    new["paragraphs"]["bpb"][lang]["nll"][2] += 0.5
    new["paragraphs"]["bpb"][lang]["nll"][3] = float("nan")  # meaningless: a difference, not a match
    found = reproduce.differences(rec, new)
    assert len(found) == 3 and found[2].startswith(f"{lang} bpb paragraph 3: ")
    assert found[0].startswith(f"{rec['metrics'][0]['language']} {rec['metrics'][0]['metric']}: ")
    assert found[1].startswith(f"{lang} bpb paragraph 2: ")


def test_the_spot_check_recomputes_and_stops_at_a_changed_number(computed, model_dir, tmp_path, capsys):  # noqa: F811
    rec = computed[1][0]
    shipped.write(rec, tmp_path)
    assert reproduce.spot_check(1, seed=7, profile="smoke", shipped_dir=tmp_path) == 0
    out = capsys.readouterr().out
    assert "seed 7 (CHECK_SEED=7 repeats it)" in out and "every number the same" in out
    bad = json.loads(json.dumps(rec))
    bad["metrics"][0]["value"] += 0.01
    shipped.write(bad, tmp_path)
    assert reproduce.spot_check(1, seed=7, profile="smoke", shipped_dir=tmp_path) == 1
    out = capsys.readouterr().out
    assert f"spot check FAILED: {rec['key']}" in out and repr(bad["metrics"][0]["value"]) in out


def test_replace_shipped_swaps_in_a_whole_folder_or_nothing(computed, tmp_path):
    out, recs = computed
    old = tmp_path / "shipped"
    shipped.write(recs[0], old)
    (old / "stale.parquet").write_bytes(b"old")
    assert reproduce.replace_shipped(out, old) == 2
    assert sorted(p.name for p in old.glob("*.parquet")) == sorted(f"{r['key']}.parquet" for r in recs)
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / f"{recs[0]['key']}.json").write_text(json.dumps(recs[0]))
    (fresh / f"{recs[1]['key']}.json").write_text('{"key": ')  # damaged: nothing is replaced
    with pytest.raises(records.RecordError):
        reproduce.replace_shipped(fresh, old)
    assert len(list(old.glob("*.parquet"))) == 2 and not list(tmp_path.glob(".shipped-*"))


def test_prune_removes_what_no_notebook_read_and_only_after_a_whole_build(computed, tmp_path):
    recs = computed[1]
    ship_dir, build = tmp_path / "shipped", tmp_path / "build"
    for rec in recs:
        shipped.write(rec, ship_dir)
    build.mkdir()
    (build / f"01_a{reproduce.LOG_SUFFIX}").write_text(f"{recs[0]['key']}\tshipped\n")
    with pytest.raises(experiments.ConfigError, match="no record log of 02_b: run `make figures`"):
        reproduce.prune(build, ["01_a", "02_b"], ship_dir)
    assert len(list(ship_dir.glob("*.parquet"))) == 2  # refused before removing anything
    (build / f"02_b{reproduce.LOG_SUFFIX}").write_text("")
    assert reproduce.prune(build, ["01_a", "02_b"], ship_dir) == [recs[1]["key"]]
    assert shipped.read(shipped.shipped_path(recs[0]["key"], ship_dir)) == recs[0]
    assert len(list((ship_dir / "texts").glob("*.parquet"))) == 1  # still named by the record left
    (build / f"01_a{reproduce.LOG_SUFFIX}").write_text("")
    assert reproduce.prune(build, ["01_a", "02_b"], ship_dir) == [recs[0]["key"]]
    assert not list(ship_dir.rglob("*.parquet"))  # the text went with the last record naming it


def test_the_shipped_configs_become_a_grid_for_the_sweep(computed, tmp_path):
    for rec in computed[1]:
        shipped.write(rec, tmp_path)
    spec = yaml.safe_load(yaml.safe_dump(reproduce.grid("smoke", tmp_path)))
    assert sorted(c.key() for c in sweep.expand(spec)) == sorted(r["key"] for r in computed[1])
    with pytest.raises(experiments.ConfigError, match="only profile beside it"):
        sweep.expand(spec | {"base": {"seed": 1}})


def test_make_wires_the_spot_check_the_record_logs_and_reproduce():
    """`make -n` prints what the targets would run: the spot check takes CHECK and CHECK_SEED,
    each notebook logs its records, and reproduce renders into a fresh folder then swaps it in."""
    import subprocess

    from mwanda import REPO_ROOT

    def dry(*args: str) -> str:
        return subprocess.run(
            ["make", "-n", "--no-print-directory", "-C", str(REPO_ROOT), *args],
            capture_output=True,
            text=True,
        ).stdout

    figures = dry("figures", "CHECK=2", "CHECK_SEED=5")
    assert "mwanda.study.reproduce check --count 2 --seed 5" in figures
    assert (
        "MWANDA_RECORD_LOG=" + str(REPO_ROOT / "build" / "embedded" / "04_mwanda_vs_wanda.records") in figures
    )
    assert "mwanda.study.reproduce status" in figures
    assert "reproduce prune" in dry("ship", "PRUNE=1") and "reproduce prune" not in dry("ship")
    again = dry("reproduce")
    fresh = REPO_ROOT / "build" / "reproduce" / "results"
    assert f"-p results_dir {fresh}" in again and "check --count 0" in again
    assert again.rstrip().endswith(f"mwanda.study.reproduce ship --replace {fresh}")


def test_the_committed_shipped_records_are_whole_and_small():
    """Every shipped record reads back and checks, belongs to a notebook profile (a test's record
    never leaks in), names a text that is there, and no text is left over; all in at most 20 MB."""
    import pyarrow.parquet as pq

    root = shipped.SHIPPED_DIR
    texts = set()
    for path in sorted(root.glob("*.parquet")):
        rec = shipped.read(path)
        assert rec["config"]["profile"] in ("embedded", "gemma"), path
        texts.add(json.loads(pq.ParquetFile(path).schema_arrow.metadata[shipped.META_KEY])["text"])
    assert {p.stem for p in (root / shipped.TEXTS).glob("*.parquet")} == texts - {None}
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    assert size <= 20 * 2**20, f"{size / 2**20:.1f} MB shipped"


def test_the_results_store_reads_shipped_records_for_the_shared_folder_only(computed, shared, tmp_path):
    from mwanda.study import results

    wanda, magnitude = computed[1]
    shipped.write(wanda, shared / "shipped")
    shared.mkdir(exist_ok=True)
    (shared / f"{magnitude['key']}.json").write_text(json.dumps(magnitude))
    assert [r["key"] for r in results.read_records(shared)] == sorted([wanda["key"], magnitude["key"]])
    assert results.read_records(tmp_path / "other") == []
    assert set(results.load(shared)["key"]) == {wanda["key"], magnitude["key"]}
