"""Record files: schema checks on read, and what run, sweep and results do with a damaged one.

Records are written here by hand (no model runs), so every case takes milliseconds.
"""

from __future__ import annotations

import json
import pickle
import re
from dataclasses import asdict

import pytest

from mwanda.cli import main
from mwanda.study import experiments, results, sweep
from mwanda.study.experiments import RecordError, RecordWarning


def record(cfg: experiments.ExperimentConfig, bpb: float = 1.5) -> dict:
    """A valid record of ``cfg`` as ``experiments.run`` writes it, with made-up metrics."""
    return {
        "key": cfg.key(),
        "version": experiments.SCORING_VERSION,
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()},
        "metrics": [{"language": lang, "metric": "bpb", "value": bpb} for lang in cfg.eval_langs],
        "pruning": None if cfg.method == "dense" else {"achieved_sparsity": cfg.sparsity},
        "provenance": {"torch": "x"},
        "seconds": 1.0,
    }


def write(results_dir, rec: dict, text: str | None = None):
    path = results_dir / f"{rec['key']}.json"
    path.write_text(json.dumps(rec) if text is None else text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def dense():
    return experiments.make_config("smoke", method="dense")


@pytest.fixture(scope="module")
def magnitude():
    return experiments.make_config("smoke", method="magnitude", sparsity=0.5)


def damage(rec: dict, how: str) -> str:
    """The text of ``rec`` damaged as ``how`` says."""
    text = json.dumps(rec)
    edits = {
        "empty object": lambda r: {},
        "array": lambda r: [r],
        "key mismatch": lambda r: r | {"key": "0" * 20},
        "config a list": lambda r: r | {"config": []},
        "metrics an object": lambda r: r | {"metrics": {}},
        "metric value a string": lambda r: (
            r | {"metrics": [{"language": "en", "metric": "bpb", "value": "x"}]}
        ),
        "metric value a bool": lambda r: (
            r | {"metrics": [{"language": "en", "metric": "bpb", "value": True}]}
        ),
        "metric row without language": lambda r: r | {"metrics": [{"metric": "bpb", "value": 1.0}]},
        "metric row a number": lambda r: r | {"metrics": [1.0]},
        "pruning a list": lambda r: r | {"pruning": []},
        "provenance null": lambda r: r | {"provenance": None},
        "seconds a string": lambda r: r | {"seconds": "1"},
        "no version": lambda r: {k: v for k, v in r.items() if k != "version"},
        "paragraphs a list": lambda r: r | {"paragraphs": []},
        "paragraphs of a metric a list": lambda r: r | {"paragraphs": {"bpb": [1.0]}},
        "paragraph nll a string": lambda r: r | {"paragraphs": {"bpb": {"en": {"nll": "x", "bytes": [3]}}}},
        "paragraph bytes missing": lambda r: r | {"paragraphs": {"bpb": {"en": {"nll": [1.0]}}}},
        "paragraph lists of two lengths": lambda r: (
            r | {"paragraphs": {"bpb": {"en": {"nll": [1.0, 2.0], "bytes": [3]}}}}
        ),
    }
    if how == "truncated":
        return text[: len(text) // 2]
    if how == "empty file":
        return ""
    return json.dumps(edits[how](rec))


DAMAGES = [
    ("empty file", "invalid JSON"),
    ("truncated", "invalid JSON"),
    ("empty object", "missing key(s) ['key', 'version', 'config'"),
    ("array", "not a JSON object"),
    ("key mismatch", "is not its file name"),
    ("config a list", "config is [], not an object with a method"),
    ("metrics an object", "metrics is {}, not a list"),
    ("metric value a string", "metrics[0].value is 'x', not a number"),
    ("metric value a bool", "metrics[0].value is True, not a number"),
    ("metric row without language", "metrics[0].language is missing"),
    ("metric row a number", "metrics[0] is 1.0, not an object"),
    ("pruning a list", "pruning is [], not an object or null"),
    ("provenance null", "provenance is None, not an object"),
    ("seconds a string", "seconds is '1', not a number"),
    ("no version", "missing key(s) ['version']"),
    ("paragraphs a list", "paragraphs is [], not an object"),
    ("paragraphs of a metric a list", "paragraphs.bpb is [1.0], not an object"),
    (
        "paragraph nll a string",
        "paragraphs.bpb.en is {'nll': 'x', 'bytes': [3]}, not an object of nll and bytes",
    ),
    ("paragraph bytes missing", "paragraphs.bpb.en is {'nll': [1.0]}, not an object of nll and bytes"),
    ("paragraph lists of two lengths", "paragraphs.bpb.en has 2 nll values but 1 byte counts"),
]


@pytest.mark.parametrize("how,problem", DAMAGES, ids=[d[0] for d in DAMAGES])
def test_read_record_names_the_file_and_the_problem(dense, tmp_path, how, problem):
    path = write(tmp_path, record(dense), damage(record(dense), how))
    with pytest.raises(RecordError) as err:
        experiments.read_record(path)
    assert str(path) in str(err.value) and problem in str(err.value)
    assert "delete it or run its config again" in str(err.value)
    assert str(pickle.loads(pickle.dumps(err.value))) == str(err.value)  # crosses submitit jobs
    with pytest.warns(RecordWarning, match=re.escape(str(path))):
        assert experiments.read_record(path, on_damage="skipped it") is None


def test_read_record_of_a_valid_and_a_missing_file(dense, tmp_path):
    rec = record(dense)
    assert experiments.read_record(write(tmp_path, rec)) == rec
    assert experiments.read_record(tmp_path / "none.json") is None


def test_results_skip_damaged_records_with_a_warning(dense, magnitude, tmp_path):
    good = write(tmp_path, record(dense))
    bad = [
        write(tmp_path, {"key": "a" * 20}, "{}"),
        write(tmp_path, {"key": "b" * 20}, json.dumps(record(magnitude))[:100]),
        write(tmp_path, record(magnitude), damage(record(magnitude), "metric value a string")),
    ]
    with pytest.warns(RecordWarning) as caught:
        records = results.read_records(tmp_path)
    assert [r["key"] for r in records] == [good.stem]
    messages = [str(w.message) for w in caught]
    assert all(any(str(p) in m for m in messages) for p in bad) and len(messages) == 3
    assert all("skipped it" in m for m in messages)
    with pytest.warns(RecordWarning):
        df = results.load(tmp_path)
    assert set(df["key"]) == {good.stem} and set(df["method"]) == {"dense"}
    assert len(df) == len(dense.eval_langs)


def test_results_of_only_damaged_records_is_an_empty_frame(tmp_path):
    write(tmp_path, {"key": "a" * 20}, "")
    with pytest.warns(RecordWarning, match="invalid JSON"):
        df = results.load(tmp_path)
    assert df.empty and list(df.columns) == ["key", "language", "metric", "value"]


def test_pending_counts_only_valid_records_as_done(dense, magnitude, tmp_path):
    write(tmp_path, record(dense))
    path = write(tmp_path, record(magnitude), damage(record(magnitude), "truncated"))
    with pytest.warns(RecordWarning, match=re.escape(str(path)) + ".*counts as pending"):
        todo = sweep.pending([dense, magnitude], tmp_path)
    assert [c.key() for c in todo] == [magnitude.key()]


def test_sweep_dry_run_lists_damaged_records_as_pending(dense, magnitude, tmp_path, capsys):
    grid = tmp_path / "grid.yaml"
    grid.write_text("profile: smoke\nbase: {sparsity: 0.5}\ngrid: {method: [dense, magnitude]}\n")
    out = tmp_path / "r"
    out.mkdir()
    write(out, record(dense))
    write(out, record(magnitude), "{}")
    assert main(["sweep", str(grid), "--results", str(out), "--dry-run"]) == 0
    captured = capsys.readouterr()
    assert magnitude.key() in captured.out and dense.key() not in captured.out
    warning = [line for line in captured.err.splitlines() if line.startswith("mwanda: warning: record")]
    assert len(warning) == 1 and magnitude.key() in warning[0] and "is damaged" in warning[0]
