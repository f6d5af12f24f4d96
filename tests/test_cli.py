"""`mwanda prune` end to end on a tiny saved model, and every bad input of issue 2 §6."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import VOCAB, byte_bpe_tokenizer, tiny_model
from transformers import AutoModelForCausalLM

from mwanda.cli import main
from mwanda.core import report as report_mod

TEXT = {
    "en": "the quick brown fox jumps over the lazy dog and runs far away into the green forest",
    "de": "der schnelle braune fuchs springt über den faulen hund und läuft weit in den grünen wald",
    "fr": "le renard brun rapide saute par dessus le chien paresseux et court loin dans la forêt verte",
}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A tiny Llama saved with save_pretrained plus a small trained BPE tokenizer."""
    path = tmp_path_factory.mktemp("model") / "tiny"
    tiny_model("llama", layers=2).save_pretrained(path)
    byte_bpe_tokenizer(list(TEXT.values()) * 5, VOCAB - 8, byte_level=False).save_pretrained(path)
    return path


@pytest.fixture
def text_file(tmp_path):
    p = tmp_path / "calib.jsonl"
    p.write_text("".join(json.dumps({"lang": k, "text": (v + " ") * 10}) + "\n" for k, v in TEXT.items()))
    return p


def run(*args):
    return main([str(a) for a in args])


def test_prune_text_then_tokens_reproduces_masks(model_dir, text_file, tmp_path, capsys):
    out1, tokens = tmp_path / "a", tmp_path / "tokens.jsonl"
    common = ["prune", "--model", model_dir, "--method", "mwanda", "--sparsity", "0.5", "--no-progress"]
    assert (
        run(
            *common,
            "--calib-text",
            text_file,
            "--nsamples",
            6,
            "--seqlen",
            8,
            "--save-calib",
            tokens,
            "--out",
            out1,
        )
        == 0
    )
    assert "pruning_report.json" in capsys.readouterr().out
    rep = json.loads((out1 / "pruning_report.json").read_text())
    assert rep["calibration"]["tokens_per_language"] == {"en": 16, "de": 16, "fr": 16}
    assert rep["achieved_sparsity"] == 0.5 and (out1 / "model.safetensors").exists()
    pruned = AutoModelForCausalLM.from_pretrained(out1)
    q = pruned.model.layers[0].self_attn.q_proj.weight
    assert ((q == 0).sum(1) == q.shape[1] // 2).all()
    out2 = tmp_path / "b"
    assert run(*common, "--calib-tokens", tokens, "--out", out2) == 0
    assert json.loads((out2 / "pruning_report.json").read_text())["mask_sha256"] == rep["mask_sha256"]


def test_python_dash_m_entry_point(model_dir, tmp_path):
    import subprocess
    import sys

    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "mwanda",
            "prune",
            "--model",
            str(model_dir),
            "--method",
            "magnitude",
            "--out",
            str(tmp_path / "m"),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    assert json.loads((tmp_path / "m" / "pruning_report.json").read_text())["method"] == "magnitude"


BAD = [
    (["--sparsity", "1.0"], "0 <= sparsity < 1"),
    (["--sparsity", "-0.1"], "0 <= sparsity < 1"),
    (["--structure", "2:4", "--sparsity", "0.6"], "set --sparsity 0.5"),
    (["--structure", "4:2", "--sparsity", "0.5"], "0 < n < m"),
    (["--structure", "2:4", "--sparsity", "0.5", "--allocation", "owl"], "--allocation uniform"),
    (["--alpha", "-1"], "alpha=-1.0 must be a finite number with 0 <= alpha"),
    (["--beta", "nan"], "beta=nan must be a finite number"),
    (["--lambda", "-0.1"], "owl_lambda=-0.1"),
    (["--nsamples", "2"], "raise --nsamples"),
    (["--seqlen", "100000"], "longer than the model's context"),
]


@pytest.mark.parametrize("extra,message", BAD)
def test_bad_arguments_fail_before_work(model_dir, text_file, tmp_path, capsys, extra, message):
    out = tmp_path / "out"
    args = [
        "prune",
        "--model",
        model_dir,
        "--method",
        "mwanda",
        "--calib-text",
        text_file,
        "--out",
        out,
        *extra,
    ]
    args += [] if "--nsamples" in extra else ["--nsamples", "6"]
    args += [] if "--seqlen" in extra else ["--seqlen", "8"]
    assert run(*args) == 2
    assert message in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.glob(".out*"))


def test_overwrite_replaces_only_mwanda_outputs(model_dir, tmp_path, capsys):
    out = tmp_path / "out"
    common = ("prune", "--model", model_dir, "--method", "magnitude", "--out", out, "--no-progress")
    assert run(*common) == 0
    (out / "extra.txt").write_text("left by an earlier run")
    assert run(*common) == 2 and "--overwrite" in capsys.readouterr().err
    assert run(*common, "--overwrite") == 0
    assert not (out / "extra.txt").exists() and (out / "pruning_report.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # nothing hidden left beside it


@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_outputs_follow_the_umask(model_dir, tmp_path, mask):
    import os

    old = os.umask(mask)
    try:
        assert run("prune", "--model", model_dir, "--method", "magnitude", "--out", tmp_path / "o") == 0
    finally:
        os.umask(old)
    out = tmp_path / "o"
    assert out.stat().st_mode & 0o777 == 0o777 & ~mask
    for f in out.iterdir():
        assert f.stat().st_mode & 0o777 == 0o666 & ~mask, f.name


def test_disk_full_is_one_line_and_leaves_nothing(model_dir, tmp_path, monkeypatch, capsys):
    import errno

    def full(self, path, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(report_mod.PruningReport, "save", full)
    out = tmp_path / "o"
    assert run("prune", "--model", model_dir, "--method", "magnitude", "--out", out, "--no-progress") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No space left on device" in err and "free disk space" in err
    assert list(tmp_path.iterdir()) == []


def test_a_save_killed_mid_swap_gets_its_old_output_back(model_dir, tmp_path):
    """kill -9 between moving the old output aside and renaming the new one in: the next run on
    the same --out restores the old output first, then replaces it as asked."""
    out = tmp_path / "out"
    common = ("prune", "--model", model_dir, "--method", "magnitude", "--out", out, "--no-progress")
    assert run(*common) == 0
    partial = tmp_path / ".out.mwanda-partial"
    partial.mkdir()
    out.rename(partial / "old")
    (partial / "new").mkdir()
    (partial / "new" / "half.safetensors").write_bytes(b"\0" * 100)
    with pytest.raises(SystemExit):  # --overwrite is missing: refused, but the old output is back
        from mwanda.core.report import OutputSlot

        with OutputSlot(out, overwrite=False):
            raise SystemExit
    assert run(*common) == 2  # out exists again (restored), so a run without --overwrite refuses
    assert (out / "pruning_report.json").exists() and not partial.exists()
    assert run(*common, "--overwrite") == 0


def test_debug_shows_the_traceback(model_dir, tmp_path, capsys):
    assert run("--debug", "prune", "--model", model_dir, "--sparsity", "2", "--out", tmp_path / "o") == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.rstrip().endswith("must be a finite number with 0 <= sparsity < 1.")


def test_every_prune_config_field_has_a_flag():
    """The CLI derives its hyperparameter flags from PruneConfig: a new field needs no CLI edit."""
    from dataclasses import fields

    from mwanda.cli import build_parser
    from mwanda.core.config import PruneConfig

    args = build_parser().parse_args(["prune", "--model", "m", "--out", "o"])
    assert {f.name: getattr(args, f.name) for f in fields(PruneConfig)} == {
        f.name: list(f.default) if isinstance(f.default, tuple) else f.default for f in fields(PruneConfig)
    }


def test_interrupted_save_leaves_nothing(model_dir, tmp_path, monkeypatch):
    out = tmp_path / "out"

    def boom(self, *a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(report_mod.PruningReport, "save", boom)
    with pytest.raises(KeyboardInterrupt):
        run("prune", "--model", model_dir, "--method", "magnitude", "--out", out, "--no-progress")
    assert list(tmp_path.iterdir()) == []


def test_wanda_without_calibration_is_an_error(model_dir, tmp_path, capsys):
    assert run("prune", "--model", model_dir, "--method", "wanda", "--out", tmp_path / "o") == 2
    assert "--calib-tokens or --calib-text" in capsys.readouterr().err


def test_tokens_from_another_tokenizer(model_dir, tmp_path, capsys):
    p = tmp_path / "c.jsonl"
    p.write_text(json.dumps({"lang": "en", "input_ids": [1, 5000, 3]}) + "\n")
    assert (
        run("prune", "--model", model_dir, "--calib-tokens", p, "--out", tmp_path / "o", "--no-progress") == 2
    )
    assert "another tokenizer" in capsys.readouterr().err


def test_missing_model_names_fix(tmp_path, capsys):
    assert run("prune", "--model", tmp_path / "nope", "--method", "magnitude", "--out", tmp_path / "o") == 2
    assert "does not exist" in capsys.readouterr().err


def test_model_without_decoder_blocks():
    from mwanda.core.blocks import ModelStructureError
    from mwanda.core.config import PruneConfig
    from mwanda.core.prune import prune_model

    with pytest.raises(ModelStructureError, match="BLOCK_PATHS"):
        prune_model(torch.nn.Sequential(torch.nn.Linear(4, 4)), None, PruneConfig(method="magnitude"))


def test_nan_weight_stops_the_run_naming_it():
    from conftest import tiny_calib

    from mwanda.core.blocks import ModelStructureError
    from mwanda.core.config import PruneConfig
    from mwanda.core.prune import prune_model

    model = tiny_model("llama", layers=2)
    with torch.no_grad():
        model.model.layers[1].post_attention_layernorm.weight[0] = float("nan")
    with pytest.raises(ModelStructureError, match="model.layers.1.post_attention_layernorm.weight holds NaN"):
        prune_model(model, tiny_calib(), PruneConfig(method="magnitude"), progress=False)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["prune", "--model", "m", "--out", "o", "--method", "wnda"],
            "invalid choice: 'wnda' (choose from 'magnitude',",
        ),
        (["prune", "--model", "m", "--out", "o", "--sparsity", "0,5"], "invalid float value: '0,5'"),
        (["prune", "--out", "o"], "the following arguments are required: --model"),
        (["frob"], "invalid choice: 'frob' (choose from 'prune', 'run', 'sweep', 'calib', 'build')"),
    ],
)
def test_argparse_errors_are_one_line(args, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(err) == 1
    assert err[0].startswith("mwanda: error: ") and message in err[0] and "--help" in err[0]


def test_help_shows_every_flag_with_its_default(capsys):
    with pytest.raises(SystemExit):
        main(["prune", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag, words in {
        "--nsamples": "(default: 128)",
        "--seqlen": "(default: 256)",
        "--dtype": "(default: float32)",
        "--device": "default: auto",
        "--no-progress": "no progress bars",
        "--no-sequential": "from the dense model in one pass instead",
        "--sparsity": "(default: 0.5)",
    }.items():
        assert f"{flag}" in text and words in text, flag
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "``" not in capsys.readouterr().out


def test_calib_writes_the_corpus_text_prune_reads_and_never_replaces_a_file_silently(tmp_path, capsys):
    from mwanda import data
    from mwanda.core.calibration import read_text_jsonl

    out = tmp_path / "calib.jsonl"
    assert main(["calib", "--out", str(out), "--langs", "de", "ja"]) == 0
    assert read_text_jsonl(out) == {lang: data.load_text(lang, "calib") for lang in ("de", "ja")}
    before = out.read_bytes()
    assert main(["calib", "--out", str(out), "--langs", "en"]) == 2
    assert "pass --overwrite" in capsys.readouterr().err and out.read_bytes() == before
    assert main(["calib", "--out", str(out), "--langs", "en", "--overwrite"]) == 0
    assert list(read_text_jsonl(out)) == ["en"]
    assert main(["calib", "--out", str(tmp_path / "x.jsonl"), "--langs", "xx"]) == 2
    assert not (tmp_path / "x.jsonl").exists()
