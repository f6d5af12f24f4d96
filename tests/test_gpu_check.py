"""benchmarks/gpu_check.py on the CPU (--tiny): its logic runs here, its numbers on a GPU."""

from __future__ import annotations

import importlib.util
import json

from mwanda import REPO_ROOT


def load_script():
    spec = importlib.util.spec_from_file_location("gpu_check", REPO_ROOT / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tiny_run_writes_the_json_the_readme_table_comes_from(tmp_path, capsys):
    gpu_check = load_script()
    out = tmp_path / "gpu_check.json"
    assert gpu_check.main(["--tiny", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert set(result["prune"]) == {"wanda", "mwanda", "mwanda+cwl"}
    for run in result["prune"].values():
        assert abs(run["achieved_sparsity"] - 0.5) < 1e-3
        assert run["timings_s"]["total_s"] > 0 and "capture_s" in run["timings_s"]
    assert "dense_pass_s" in result["prune"]["mwanda+cwl"]["timings_s"]
    assert result["model"]["dims"]["rope_scaling"]["rope_type"] == "llama3"
    assert "| mwanda+cwl |" in capsys.readouterr().out


def test_the_full_run_has_llama_3_1_8b_dimensions():
    dims = load_script().LLAMA31_8B
    assert (dims["hidden_size"], dims["intermediate_size"], dims["num_hidden_layers"]) == (4096, 14336, 32)
    assert dims["num_attention_heads"] // dims["num_key_value_heads"] == 4 and not dims["tie_word_embeddings"]


def test_without_a_gpu_the_full_run_says_so(capsys):
    import torch

    if torch.cuda.is_available():
        return
    assert load_script().main([]) == 2
    assert "no CUDA device" in capsys.readouterr().err
