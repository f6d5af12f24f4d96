"""The paper profile's data path, offline: Hub-schema stand-ins (tests/paper_standins.py), a
Llama-3.1-shaped random model in bfloat16, lm-eval's six paper tasks through their own configs
on a local mirror, and the runner unchanged but for the sources."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import pytest
import yaml
from paper_standins import TASK_ROWS, culturax, flores_plus, llama31_like, lm_eval_tasks

from mwanda import data, hub_data
from mwanda.core.config import ConfigError
from mwanda.evaluation import tasks
from mwanda.study import experiments

ITEMS = 3  # per task and language
SMOKE = yaml.safe_load((experiments.REPO_ROOT / "notebooks" / "params" / "smoke.yaml").read_text())
PROMPT_KEYS = ("dataset_name", "doc_to_text", "doc_to_choice", "doc_to_target", "output_type")

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
        "tasks": lm_eval_tasks(root, EVAL, items=ITEMS),
    }


def paper(sources, **overrides):
    """The paper profile with every source swapped for its local stand-in, smoke-sized."""
    local = dict(
        model=str(sources["model"]), calib_dataset=str(sources["calib"]), eval_dataset=str(sources["eval"])
    )
    smoke = dict(device="cpu", calib_langs=CALIB, eval_langs=EVAL, nsamples=6, seqlen=64, eval_max_chars=2000)
    return experiments.make_config("paper", **(local | smoke | {"tasks": []} | overrides))  # batch_size: auto


def test_stand_ins_are_read_in_the_hubs_own_names(sources):
    """FLORES+ configs are ISO 639-3 + script ('test' is its 'devtest'), CulturaX's ISO 639-1."""
    flores = sources["eval"]
    assert (flores / "devtest" / "cmn_Hans.parquet").exists() and (
        flores / "dev" / "deu_Latn.parquet"
    ).exists()
    assert (sources["calib"] / "ja" / "ja_part_00000.parquet").exists()
    test = hub_data.load_hub_text(str(flores), "de", "test", None)
    dev = hub_data.load_hub_text(str(flores), "de", "dev", None)
    assert test.split("\n\n")[0] in data.load_paragraphs("de", "test").values()
    assert dev.split("\n\n")[0] in data.load_paragraphs("de", "dev").values()
    with pytest.raises(data.DataError, match="languages that have one"):
        hub_data.load_hub_text(str(flores), "xx", "test", None)


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


def paper_task_names() -> list[str]:
    return experiments.task_list(experiments.make_config("paper", eval_langs=EVAL))


def test_six_paper_tasks_read_the_mirror_through_lm_evals_own_configs(sources):
    """Only ``dataset_path`` changes: names, splits, prompts and versions are lm-eval's."""
    names = paper_task_names()
    assert {tasks.describe_task(n)[0] for n in names} == set(TASK_ROWS)  # all six benchmarks
    _, loaded = tasks.load_tasks(names, task_data=sources["tasks"])
    assert sorted(loaded["tasks"]) == sorted(names)
    for name, task in loaded["tasks"].items():
        hub_id = tasks.lm_eval_task_field(name, "dataset_path")
        assert task.config.dataset_path == str(sources["tasks"] / hub_id)
        for key in PROMPT_KEYS:
            own = tasks.lm_eval_task_field(name, key)
            if isinstance(own, str) and not own.startswith("!function"):
                assert getattr(task.config, key) == own, (name, key)
        assert task.config.metadata["version"] == tasks.lm_eval_task_field(name, "metadata")["version"]
        assert len(list(task.eval_docs)) == ITEMS


def test_paper_profile_evaluates_the_six_tasks_on_the_mirror(sources, tmp_path):
    cfg = paper(sources, method="wanda", sparsity=0.5, tasks=list(TASK_ROWS), task_data=str(sources["tasks"]))
    record = experiments.run(cfg, results_dir=tmp_path, progress=False)
    acc = {
        (r["metric"], r["language"]): r["value"] for r in record["metrics"] if r["metric"].endswith("_acc")
    }
    table = tasks.task_table()
    expected = {(f"{b}_acc", lang) for b in TASK_ROWS for lang in EVAL if lang in table[b]}
    assert set(acc) == expected and all(v in {i / ITEMS for i in range(ITEMS + 1)} for v in acc.values())
    assert sorted(record["provenance"]["task_versions"]) == sorted(paper_task_names())
    assert cfg.key() != replace(cfg, task_data=None).key()  # a mirror is part of the key


def test_a_mirror_without_a_dataset_fails_before_the_model_loads(sources, tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    shutil.copytree(sources["tasks"], mirror)
    shutil.rmtree(mirror / "facebook" / "belebele")
    cfg = paper(sources, method="wanda", tasks=["xnli", "belebele"], task_data=str(mirror))

    def no_model(*_, **__):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(experiments, "_dense_model", no_model)
    with pytest.raises(tasks.TaskError, match=r"lacks datasets: belebele_\w+ needs .*facebook/belebele"):
        experiments.run(cfg, results_dir=tmp_path / "results", progress=False)
    (mirror / "facebook" / "xnli" / "validation" / "de.parquet").unlink()  # a split's file gone
    cfg = paper(sources, method="wanda", tasks=["xnli"], task_data=str(mirror))
    with pytest.raises(tasks.TaskError, match="cannot load the data .* from the mirror"):
        experiments.run(cfg, results_dir=tmp_path / "results", progress=False)
    with pytest.raises(ConfigError, match="task_data=.* is not a folder"):
        paper(sources, tasks=["xnli"], task_data=str(tmp_path / "nowhere"))


def test_a_profile_file_extends_a_profile(sources, tmp_path):
    path = tmp_path / "standins.yaml"
    path.write_text(
        f"extends: paper\nmodel: {sources['model']}\ndevice: cpu\nnsamples: 6\n", encoding="utf-8"
    )
    cfg = experiments.make_config(str(path), seqlen=64)
    assert (cfg.model, cfg.nsamples, cfg.seqlen, cfg.dtype) == (str(sources["model"]), 6, 64, "bfloat16")
    assert cfg.profile == str(path)
    path.write_text("extends: papr\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="must name one of the profiles"):
        experiments.make_config(str(path))
    path.write_text("extends: paper\nnsample: 6\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['nsample'\]"):
        experiments.make_config(str(path))
    with pytest.raises(ConfigError, match="unknown profile 'papr'.*extends"):
        experiments.make_config("papr")


def test_notebook_04_runs_under_the_paper_profile_on_the_stand_ins(sources, tmp_path):
    """Notebook 04 headless (papermill), as `make 04_mwanda_vs_wanda PROFILE=<file>` runs it:
    the paper profile with every source local, smoke-sized, HF_HUB_OFFLINE=1 (conftest)."""
    import papermill

    notebook = experiments.REPO_ROOT / "notebooks" / "04_mwanda_vs_wanda.ipynb"
    profile = tmp_path / "paper_standins.yaml"
    local = dict(
        model=str(sources["model"]), calib_dataset=str(sources["calib"]), eval_dataset=str(sources["eval"])
    )
    smoke = dict(device="cpu", calib_langs=["en", "de"], eval_langs=["en", "zh"], nsamples=6, seqlen=64)
    settings = {
        "extends": "paper",
        **local,
        **smoke,
        "eval_max_chars": 1500,
        "task_data": str(sources["tasks"]),
    }
    profile.write_text(yaml.safe_dump(settings), encoding="utf-8")
    params = SMOKE | {"profile": str(profile), "results_dir": str(tmp_path / "results")}
    params["figures_dir"] = str(tmp_path / "figures")
    papermill.execute_notebook(
        str(notebook),
        str(tmp_path / notebook.name),
        parameters=params,
        cwd=str(notebook.parent),
        progress_bar=False,
    )
    records = [json.loads(p.read_text()) for p in (tmp_path / "results").glob("*.json")]
    assert {r["config"]["profile"] for r in records} == {str(profile)}
    assert {r["config"]["dtype"] for r in records} == {"bfloat16"}
    benches = {m["metric"] for r in records for m in r["metrics"] if m["metric"].endswith("_acc")}
    assert benches == {f"{b}_acc" for b in TASK_ROWS}
    saved = {p.name for p in (tmp_path / "figures" / notebook.stem).iterdir()}
    assert (
        "per_language_bpb_50.png" in saved
        and "xnli_accuracy_50.png" in saved
        and not any("udhr" in s or "proxy" in s for s in saved)
    )


@pytest.mark.parametrize("which", ["calib_dataset", "eval_dataset"])
def test_a_gated_dataset_fails_naming_it_before_the_model_loads(sources, tmp_path, monkeypatch, which):
    """The Hub's answer for a gated dataset without a token (faked: there is no network here)."""
    import datasets
    from datasets.exceptions import DatasetNotFoundError

    hub_id = {"calib_dataset": "uonlp/CulturaX", "eval_dataset": "openlanguagedata/flores_plus"}[which]

    def gated(path, *args, **kwargs):
        if path == hub_id:
            raise DatasetNotFoundError(f"Dataset '{path}' is a gated dataset on the Hub.\nVisit its page.")
        return real(path, *args, **kwargs)

    real = datasets.load_dataset
    monkeypatch.setattr(datasets, "load_dataset", gated)
    monkeypatch.setattr(experiments, "_dense_model", lambda *a, **k: pytest.fail("the model was loaded"))
    cfg = paper(sources, method="wanda", **{which: hub_id})
    with pytest.raises(
        data.DataError, match=f"cannot load dataset '{hub_id}'.*gated.*huggingface-cli login"
    ) as err:
        experiments.run(cfg, results_dir=tmp_path, progress=False)
    assert "\n" not in str(err.value)
