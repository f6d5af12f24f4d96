"""The bad-input table: every way a hostile user has broken ``mwanda prune|run|sweep``, as data.

Each case builds its arguments inside a workspace of small inputs (tiny models, calibration
files, configs), runs the CLI in-process and is judged on what a user sees and keeps:

- ``refused``: exit code 2 and one line ``mwanda: error: ...`` that contains ``message``;
- ``ok``: exit code 0 (``check`` may assert more, e.g. the sparsity reached);
- in every case the inputs are byte-identical afterwards and nothing half-written is left.

``tests/test_bad_inputs.py`` runs every case as a test; ``benchmarks/bad_inputs.py`` runs the
table and prints it with the counts, so the next hostile pass starts from here.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from conftest import VOCAB, byte_bpe_tokenizer, tiny_model
from transformers import AutoConfig, AutoModelForCausalLM

TEXT = {
    "en": "the quick brown fox jumps over the lazy dog and runs far away into the green forest. ",
    "de": "der schnelle braune fuchs springt über den faulen hund und läuft weit in den grünen wald. ",
    "fr": "le renard brun rapide saute par dessus le chien paresseux et court loin dans la forêt. ",
}


@dataclass
class Workspace:
    """Paths of the inputs every case may use; ``inputs`` are hashed before and after."""

    root: Path

    def __getattr__(self, name: str) -> Path:
        return self.root / name

    def inputs(self) -> dict[str, str]:
        """SHA-256 of every file under the workspace's input folders."""
        out = {}
        for top in ("model", "gpt2", "calib.jsonl", "tokens.jsonl"):
            base = self.root / top
            for f in sorted([base] if base.is_file() else base.rglob("*")):
                if f.is_file():
                    out[str(f.relative_to(self.root))] = hashlib.sha256(f.read_bytes()).hexdigest()
        return out


def word_tokenizer():
    """A whitespace BPE small enough for the tiny models' vocabulary of VOCAB ids."""
    return byte_bpe_tokenizer(list(TEXT.values()) * 5, VOCAB - 8, byte_level=False)


def _save(model, tokenizer, path: Path) -> Path:
    model.save_pretrained(path)
    if tokenizer is not None:
        tokenizer.save_pretrained(path)
    return path


def make_workspace(root: Path) -> Workspace:
    """Tiny models of every layout the table needs, calibration files and configs."""
    root.mkdir(parents=True, exist_ok=True)
    tok = word_tokenizer()
    _save(tiny_model("llama", layers=2, max_position_embeddings=64), tok, root / "model")
    _save(
        tiny_model("llama", layers=1, hidden_size=30, num_attention_heads=3, head_dim=10), tok, root / "odd"
    )
    nan = tiny_model("llama", layers=1)
    with torch.no_grad():
        nan.model.layers[0].mlp.up_proj.weight[0, 0] = float("nan")
    _save(nan, tok, root / "nan")
    gpt2 = AutoConfig.for_model("gpt2", n_embd=32, n_head=4, n_layer=2, vocab_size=VOCAB, bos_token_id=1)
    gpt2.eos_token_id = 2
    torch.manual_seed(0)
    _save(AutoModelForCausalLM.from_config(gpt2), tok, root / "gpt2")
    moe = dict(num_local_experts=4, num_experts_per_tok=2, num_hidden_layers=1, vocab_size=VOCAB)
    moe_cfg = AutoConfig.for_model(
        "mixtral", hidden_size=32, intermediate_size=64, num_attention_heads=4, num_key_value_heads=2, **moe
    )
    _save(AutoModelForCausalLM.from_config(moe_cfg), tok, root / "moe")
    trunc = shutil.copytree(root / "model", root / "trunc")
    weights = trunc / "model.safetensors"
    with weights.open("r+b") as fh:
        fh.truncate(weights.stat().st_size // 2)
    (root / "calib.jsonl").write_text(
        "".join(json.dumps({"lang": k, "text": v * 12}) + "\n" for k, v in TEXT.items()), encoding="utf-8"
    )
    ids = tok(TEXT["en"] * 4)["input_ids"][:16]
    (root / "tokens.jsonl").write_text(
        "".join(json.dumps({"lang": lang, "input_ids": ids}) + "\n" for lang in ("en", "de")),
        encoding="utf-8",
    )
    (root / "a_file").write_text("not a directory\n")
    return Workspace(root)


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


@dataclass
class Case:
    """One bad input: ``argv(ws)`` builds the arguments (and any files the case needs)."""

    id: str
    argv: Callable[[Workspace], list]
    expect: str = "refused"  # or "ok"
    message: str = ""  # a part of the one error line (refused) or of stderr (ok)
    check: Callable[[Workspace], None] | None = None
    group: str = "prune"
    skip_if: Callable[[], str | None] = field(default=lambda: None)


def prune(*extra, model="model", out="out", calib=("--calib-text", "calib.jsonl")) -> Callable:
    """argv of ``mwanda prune`` with workspace-relative paths (None drops a default)."""

    def build(ws: Workspace) -> list:
        args = ["prune", "--model", ws.root / model, "--no-progress", "--nsamples", "6", "--seqlen", "8"]
        args += [] if calib is None else [calib[0], ws.root / calib[1]]
        args += [] if out is None else ["--out", ws.root / out]
        return args + [ws.root / a[3:] if isinstance(a, str) and a.startswith("ws:") else a for a in extra]

    return build


def with_files(files: dict[str, str | bytes], argv: Callable) -> Callable:
    """Write ``files`` (workspace-relative) before building ``argv``."""

    def build(ws: Workspace) -> list:
        for name, text in files.items():
            write(ws.root / name, text)
        return argv(ws)

    return build


def _mwanda_output(ws: Workspace) -> list:
    """An earlier mwanda output at out/ (it carries a pruning report)."""
    write(ws.out / "pruning_report.json", "{}")
    return prune("--overwrite")(ws)


def _stale_partial(ws: Workspace) -> list:
    """What kill -9 during a save leaves: a hidden partial folder with a model copy."""
    write(ws.root / ".out.mwanda-partial" / "new" / "model.safetensors", b"\0" * 4096)
    return prune()(ws)


def _racing(ws: Workspace) -> list:
    """Another run holds out/ (its lock is taken here and kept until the case ends)."""
    from mwanda.core.report import OutputSlot

    ws.held = OutputSlot(ws.out).__enter__()
    return prune()(ws)


def _yaml(text: str, cmd: str = "run") -> Callable:
    return with_files(
        {"cfg.yaml": text}, lambda ws: [cmd, ws.root / "cfg.yaml", "--results", ws.root / "res"]
    )


def _damaged_record(cmd: str) -> Callable:
    """A record of the smoke profile's Wanda config replaced by ``{}``, then ``cmd`` over it."""

    def build(ws: Workspace) -> list:
        from mwanda.study import experiments

        cfg = experiments.make_config("smoke", method="wanda")
        write(experiments.record_path(cfg, ws.root / "res"), "{}")
        if cmd == "sweep":
            spec = write(ws.root / "grid.yaml", "profile: smoke\nbase: {method: wanda}\ngrid: {seed: [0]}\n")
            return ["sweep", spec, "--results", ws.root / "res", "--dry-run"]
        spec = write(ws.root / "cfg.yaml", "profile: smoke\nmethod: wanda\n")
        return ["run", spec, "--results", ws.root / "res"]

    return build


def _record_recomputed(ws: Workspace) -> None:
    records = [json.loads(f.read_text()) for f in (ws.root / "res").glob("*.json")]
    assert any(r.get("metrics") for r in records), "the damaged record was not recomputed"


def _no_partial(ws: Workspace) -> None:
    assert not (ws.root / ".out.mwanda-partial").exists(), "a partial save was left behind"


def _half_pruned(ws: Workspace) -> None:
    rep = json.loads((ws.out / "pruning_report.json").read_text())
    assert rep["achieved_sparsity"] == 0.5, rep["achieved_sparsity"]
    assert rep["coverage"]["fraction"] == 1.0, rep["coverage"]


def _kept(ws: Workspace) -> None:
    assert (ws.out / "keep.txt").read_text() == "mine", "the user's file was touched"


def _read_only(ws: Workspace) -> list:
    (ws.root / "ro").mkdir(mode=0o555)
    return prune(out="ro/out")(ws)


def _root() -> str | None:
    return "root ignores directory permissions" if os.geteuid() == 0 else None


CASES: list[Case] = [
    # Outputs never overlap inputs.
    Case("out-is-model", prune("--overwrite", out="model"), message="overlaps the input"),
    Case("out-is-model-no-overwrite", prune(out="model"), message="overlaps the input"),
    Case("out-contains-model", prune("--overwrite", out="."), message="overlaps the input"),
    Case("out-inside-model", prune(out="model/sub"), message="overlaps the input"),
    Case("out-is-calib-file", prune("--overwrite", out="calib.jsonl"), message="overlaps the input"),
    Case("save-calib-is-calib-text", prune("--save-calib", "ws:calib.jsonl"), message="--save-calib"),
    Case("save-calib-in-model", prune("--save-calib", "ws:model/t.jsonl"), message="--save-calib"),
    Case("save-calib-in-out", prune("--save-calib", "ws:out/t.jsonl"), message="--save-calib"),
    Case("save-calib-is-dir", prune("--save-calib", "ws:gpt2"), message="is a directory"),
    Case("out-is-file", prune(out="a_file"), message="is a file"),
    Case(
        "overwrite-foreign-dir",
        with_files({"out/keep.txt": "mine"}, prune("--overwrite")),
        message="not written by mwanda",
        check=_kept,
    ),
    Case("exists-no-overwrite", with_files({"out/keep.txt": "mine"}, prune()), message="--overwrite"),
    Case("overwrite-own-output", _mwanda_output, expect="ok", check=_half_pruned),
    Case("stale-partial-cleaned", _stale_partial, expect="ok", check=_no_partial),
    Case("racing-for-out", _racing, message="another mwanda run is writing"),
    Case("read-only-parent", _read_only, message="cannot write", skip_if=_root),
    # Hyperparameters: finite, in range, from one declaration.
    Case("alpha-inf", prune("--method", "mwanda", "--alpha", "inf"), message="alpha=inf"),
    Case("alpha-nan", prune("--method", "mwanda", "--alpha", "nan"), message="alpha=nan"),
    Case("beta-negative", prune("--method", "mwanda", "--beta", "-1"), message="beta=-1.0"),
    Case("ria-a-inf", prune("--method", "ria", "--ria-a", "inf"), message="ria_a=inf"),
    Case("lambda-inf", prune("--allocation", "owl", "--lambda", "inf"), message="owl_lambda=inf"),
    Case("lambda-half", prune("--allocation", "cwl", "--lambda", "0.5"), message="owl_lambda=0.5"),
    Case("lambda-too-wide", prune("--allocation", "cwl", "--lambda", "0.3"), message="set --lambda below"),
    Case("owl-m-zero", prune("--allocation", "owl", "--owl-m", "0"), message="owl_m=0"),
    Case("sparsity-one", prune("--sparsity", "1"), message="sparsity=1.0"),
    Case("sparsity-negative", prune("--sparsity", "-0.1"), message="sparsity=-0.1"),
    Case("sparsity-nan", prune("--sparsity", "nan"), message="sparsity=nan"),
    Case("nm-wrong-sparsity", prune("--structure", "2:4", "--sparsity", "0.6"), message="set --sparsity 0.5"),
    Case("nm-reversed", prune("--structure", "4:2"), message="0 < n < m"),
    Case("nm-garbage", prune("--structure", "two:four"), message="is not 'unstructured' or 'N:M'"),
    Case("nm-with-owl", prune("--structure", "2:4", "--allocation", "owl"), message="--allocation uniform"),
    Case("nm-width", prune("--structure", "2:4", model="odd"), message="not a multiple of 4"),
    Case("language-aware-wanda", prune("--language-aware"), message="only applies to method='ria'"),
    Case("blocksize-zero", prune("--method", "sparsegpt", "--blocksize", "0"), message="blocksize=0"),
    Case("percdamp-zero", prune("--method", "sparsegpt", "--percdamp", "0"), message="percdamp=0.0"),
    Case("percdamp-nan", prune("--method", "sparsegpt", "--percdamp", "nan"), message="percdamp=nan"),
    Case(
        "nm-not-tiling-blocksize",
        prune("--method", "sparsegpt", "--structure", "4:8", "--blocksize", "12"),
        message="set --blocksize to a multiple of 8",
    ),
    Case("sparsegpt-no-sequential", prune("--method", "sparsegpt", "--no-sequential"), message="sequential"),
    Case("sparsegpt-ok", prune("--method", "sparsegpt", "--language-aware"), expect="ok", check=_half_pruned),
    Case("unknown-method", prune("--method", "sparse"), message="invalid choice"),
    Case("seed-negative", prune("--seed", "-1"), message="seed=-1"),
    Case("batch-size-zero", prune("--batch-size", "0"), message="argument --batch-size: 0 must be >= 1"),
    Case("batch-size-garbage", prune("--batch-size", "many"), message="is not 'auto' or a positive integer"),
    Case("batch-size-auto", prune("--batch-size", "auto"), expect="ok", check=_half_pruned),
    Case("include-nothing", prune("--include", "*nothing*"), message="loosen the patterns"),
    Case(
        "exclude-most",
        prune("--exclude", "*mlp*"),
        expect="ok",
        message="only 33.3% of the blocks' weights",
    ),
    # Models.
    Case("model-missing", prune(model="no/such/model"), message="does not exist"),
    Case("model-is-file", prune(model="a_file"), message="is a file"),
    Case("model-truncated", prune(model="trunc"), message="damaged"),
    Case("model-nan-weight", prune(model="nan"), message="NaN or Inf"),
    Case("model-moe", prune(model="moe"), message="cannot prune"),
    Case("model-gpt2-conv1d", prune(model="gpt2"), expect="ok", check=_half_pruned),
    Case("device-cuda-without-gpu", prune("--device", "cuda"), message="no CUDA GPU"),
    Case("device-garbage", prune("--device", "gpu0"), message="is not a device"),
    # Calibration.
    Case("no-calibration", prune(calib=None), message="--calib-tokens or --calib-text"),
    Case("seqlen-zero", prune("--seqlen", "0"), message="seqlen=0"),
    Case("seqlen-above-context", prune("--seqlen", "65"), message="longer than the model's context"),
    Case("nsamples-zero", prune("--nsamples", "0"), message="nsamples=0"),
    Case("nsamples-below-languages", prune("--nsamples", "2"), message="raise --nsamples"),
    Case("too-little-text", prune("--nsamples", "3000"), message="distinct windows"),
    Case("calib-missing", prune(calib=("--calib-text", "nope.jsonl")), message="does not exist"),
    Case(
        "calib-empty",
        with_files({"e.jsonl": ""}, prune(calib=("--calib-text", "e.jsonl"))),
        message="no records",
    ),
    Case(
        "calib-not-utf8",
        with_files(
            {"l1.jsonl": b'{"lang": "de", "text": "gr\xfcn"}\n'}, prune(calib=("--calib-text", "l1.jsonl"))
        ),
        message="l1.jsonl:1: not UTF-8",
    ),
    Case(
        "calib-bad-json",
        with_files({"b.jsonl": '{"lang": "en"\n'}, prune(calib=("--calib-text", "b.jsonl"))),
        message="b.jsonl:1: not valid JSON",
    ),
    Case(
        "calib-unknown-language",
        with_files(
            {"u.jsonl": json.dumps({"lang": "english", "text": "x"}) + "\n"},
            prune(calib=("--calib-text", "u.jsonl")),
        ),
        message="unknown language tag 'english'",
    ),
    Case(
        "tokens-negative-id",
        with_files(
            {"n.jsonl": json.dumps({"lang": "en", "input_ids": [1, -3, 2]}) + "\n"},
            prune(calib=("--calib-tokens", "n.jsonl")),
        ),
        message="token id -3 is negative",
    ),
    Case(
        "tokens-other-tokenizer",
        with_files(
            {"v.jsonl": json.dumps({"lang": "en", "input_ids": [1, 5000, 2]}) + "\n"},
            prune(calib=("--calib-tokens", "v.jsonl")),
        ),
        message="another tokenizer",
    ),
    Case(
        "tokens-unequal-lengths",
        with_files(
            {
                "q.jsonl": "".join(
                    json.dumps({"lang": "en", "input_ids": ids}) + "\n" for ids in ([1, 2, 3], [1, 2])
                )
            },
            prune(calib=("--calib-tokens", "q.jsonl")),
        ),
        message="same length",
    ),
    Case(
        "tokens-above-context",
        with_files(
            {"c.jsonl": json.dumps({"lang": "en", "input_ids": [3] * 80}) + "\n"},
            prune(calib=("--calib-tokens", "c.jsonl")),
        ),
        message="longer than the model's context",
    ),
    # Experiment configs and sweeps (checked before any model is loaded).
    Case("yaml-syntax", _yaml("method: [wanda\n"), message="cfg.yaml", group="run"),
    Case("yaml-not-mapping", _yaml("- wanda\n"), message="YAML mapping", group="run"),
    Case("yaml-unknown-key", _yaml("methd: wanda\n"), message="unknown config key", group="run"),
    Case(
        "yaml-nsamples-many",
        _yaml("profile: smoke\nnsamples: many\n"),
        message="nsamples='many'",
        group="run",
    ),
    Case(
        "yaml-batch-size-float",
        _yaml("profile: smoke\nbatch_size: 2.5\n"),
        message="batch_size=2.5",
        group="run",
    ),
    Case("yaml-seed-abc", _yaml("profile: smoke\nseed: abc\n"), message="seed='abc'", group="run"),
    Case(
        "yaml-alpha-inf",
        _yaml("profile: smoke\nmethod: mwanda\nalpha: .inf\n"),
        message="alpha=inf",
        group="run",
    ),
    Case(
        "yaml-unknown-language",
        _yaml("profile: smoke\neval_langs: [xx]\n"),
        message="unknown language",
        group="run",
    ),
    Case(
        "yaml-model-missing",
        _yaml("profile: smoke\nmodel: ./no/such/model\n"),
        message="does not exist",
        group="run",
    ),
    Case("config-missing", lambda ws: ["run", ws.root / "none.yaml"], message="does not exist", group="run"),
    Case(
        "results-dir-is-file",
        with_files(
            {"ok.yaml": "profile: smoke\n"}, lambda ws: ["run", ws.root / "ok.yaml", "--results", ws.a_file]
        ),
        message="results directory",
        group="run",
    ),
    Case("sweep-damaged-record-is-pending", _damaged_record("sweep"), "ok", "damaged", group="sweep"),
    Case(
        "run-damaged-record-is-recomputed",
        _damaged_record("run"),
        "ok",
        "damaged",
        check=_record_recomputed,
        group="run",
    ),
    Case(
        "grid-unknown-key",
        _yaml("profile: smoke\ngrids: {}\n", "sweep"),
        message="unknown grid key",
        group="sweep",
    ),
    Case(
        "grid-bad-values",
        _yaml("profile: smoke\ngrid: {sparsity: 0.5}\n", "sweep"),
        message="non-empty list",
        group="sweep",
    ),
]


@dataclass
class Outcome:
    case: str
    code: int | None
    stderr: str
    verdict: str  # "as expected" or what went wrong
    inputs_intact: bool


def run_case(case: Case, ws: Workspace) -> Outcome:
    """Run ``case`` in ``ws`` and judge it (never raises for the case's own failure)."""
    from mwanda.cli import main

    before = ws.inputs()
    err, code, crash = io.StringIO(), None, None
    try:
        argv = [str(a) for a in case.argv(ws)]
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                code = main(argv)
            except SystemExit as exc:  # argparse's own refusals
                code = exc.code
    except Exception:  # noqa: BLE001 - a traceback is the verdict
        crash = traceback.format_exc()
    finally:
        held = ws.__dict__.pop("held", None)
        if held is not None:
            held.__exit__(None, None, None)
    intact = ws.inputs() == before
    text = err.getvalue()
    if crash:
        verdict = "traceback: " + crash.strip().splitlines()[-1]
    elif case.expect == "refused" and code != 2:
        verdict = f"exit {code}, expected a refusal"
    elif case.expect == "ok" and code != 0:
        verdict = f"exit {code}: {text.strip()[:200]}"
    elif case.expect == "refused" and case.message not in text:
        verdict = f"message lacks {case.message!r}: {text.strip()[:200]}"
    elif case.expect == "refused" and "Traceback" in text:
        verdict = "traceback printed"
    elif case.expect == "ok" and case.message and case.message not in text:
        verdict = f"warning lacks {case.message!r}: {text.strip()[:200]}"
    elif not intact:
        verdict = "an input was modified"
    else:
        verdict = "as expected"
        if case.check is not None:
            try:
                case.check(ws)
            except AssertionError as exc:
                verdict = f"check failed: {exc}"
    return Outcome(case.id, code, text.strip(), verdict, intact)
