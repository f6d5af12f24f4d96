"""Proxy tasks and lm-eval wiring: deterministic items, committed files, errors, and accuracy."""

from __future__ import annotations

import gzip
import json
import math
import unicodedata

import pytest
import torch
from conftest import byte_bpe_tokenizer, tiny_model

from mwanda.build import proxy_tasks
from mwanda.build.proxy_tasks import build_proxy_tasks, is_unspaced, make_items, proxy_configs, split_text
from mwanda.data import language_table, load_paragraphs, load_text
from mwanda.evaluation import tasks as tasks_mod
from mwanda.evaluation.tasks import (
    PROXY_KINDS,
    TASKS_DIR,
    check_tasks,
    evaluate_tasks,
    proxy_task_name,
    task_names,
    task_table,
)

LANGS = tuple(language_table())
SOURCE_SPLIT = {"continuation": "test", "udhr": "udhr"}


def read_items(kind: str, lang: str) -> list[dict]:
    with gzip.open(TASKS_DIR / kind / f"{lang}.jsonl.gz", "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


# --------------------------------------------------------------------------
# Building items
# --------------------------------------------------------------------------


def test_split_text_spaced_and_unspaced():
    first, second = split_text("one two three four five six seven eight", False, 3)
    assert (first, second) == ("one two three four", "five six seven eight")
    assert split_text("one two three four", False, 3) is None  # halves of 2 words
    ja = "すべての人間は、生まれながらにして自由である。"
    first, second = split_text(ja, True, 2)
    assert first + second == ja and abs(len(first) - len(second)) <= 1
    # Khmer: never split before a combining vowel sign or after a coeng (U+17D2).
    km = load_paragraphs("km", "udhr")["art01"]
    first, second = split_text(km, True, 2)
    assert first + second == km and not second[0].isspace()
    assert not unicodedata.category(second[0]).startswith("M") and first[-1] != "\u17d2"
    # Tibetan: split after a syllable mark (tsheg / shad).
    dz = load_paragraphs("dz", "udhr")["art01"]
    first, second = split_text(dz, True, 2, "\u0f0b\u0f0d")
    assert first[-1] in "\u0f0b\u0f0d" and first + second == dz


def test_items_are_deterministic():
    cfg = proxy_configs(n_items=20)["continuation"]
    a = make_items("de", cfg)
    for cached in (proxy_tasks.eligible_halves, proxy_tasks._coverage, proxy_tasks._preference):
        cached.cache_clear()  # recompute from the corpus, not from the cache
    assert make_items("de", cfg) == a and len(a) == 20
    other_seed = make_items("de", proxy_configs(n_items=20, seed=1)["continuation"])
    assert [x["id"] for x in other_seed] != [x["id"] for x in a]


@pytest.mark.parametrize("kind", PROXY_KINDS)
def test_items_have_four_distinct_choices_and_one_gold(kind):
    for lang in LANGS:
        paragraphs = load_paragraphs(lang, SOURCE_SPLIT[kind])
        delimiter = "" if is_unspaced(lang) else " "
        items = read_items(kind, lang)
        assert items, lang
        for item in items:
            choices = item["choices"]
            assert len(choices) == 4 and len({c.casefold() for c in choices}) == 4, (lang, item["id"])
            assert 0 <= item["label"] < 4 and item["choice_ids"][item["label"]] == item["id"]
            assert len(set(item["choice_ids"])) == 4
            # The gold continuation is the true rest of the paragraph, the others are halves of others.
            assert item["context"] + delimiter + choices[item["label"]] == paragraphs[item["id"]]
            for cid, choice in zip(item["choice_ids"], choices, strict=True):
                assert paragraphs[cid].endswith(choice)


def test_item_counts_and_cross_language_sharing():
    manifest = json.loads((TASKS_DIR / "MANIFEST.json").read_text())
    udhr = {lang: row["items"] for lang, row in manifest["tasks"]["udhr"].items()}
    assert set(udhr.values()) == {22}  # the articles of at most 64 English words
    cont = {lang: row["items"] for lang, row in manifest["tasks"]["continuation"].items()}
    assert sum(n == 200 for n in cont.values()) >= len(LANGS) - 1  # hi has few translated paragraphs
    en = {x["id"]: x["choice_ids"] for x in read_items("continuation", "en")}
    for lang in ("de", "ja", "zh", "km", "dz"):
        items = read_items("continuation", lang)
        same = sum(en.get(x["id"]) == x["choice_ids"] for x in items)
        assert same >= 0.8 * len(items), lang  # the same items and distractors as English


@pytest.mark.parametrize("kind", PROXY_KINDS)
def test_candidate_lengths_do_not_give_the_answer_away(kind):
    """Neither "the shortest candidate" nor "the candidate as long as the context" is a shortcut."""
    for lang in LANGS:
        items = read_items(kind, lang)
        closest = shortest = 0
        for item in items:
            lengths = [len(c) for c in item["choices"]]
            closest += min(range(4), key=lambda i: abs(lengths[i] - len(item["context"]))) == item["label"]
            shortest += min(range(4), key=lambda i: lengths[i]) == item["label"]
        bound = 0.45 if len(items) >= 100 else 0.5  # chance is 0.25; 22 UDHR items are noisy
        assert closest / len(items) < bound and shortest / len(items) < bound, (lang, closest, shortest)


def test_rebuild_reproduces_committed_files(tmp_path):
    build_proxy_tasks(tmp_path / "tasks")
    committed = sorted(p.relative_to(TASKS_DIR) for p in TASKS_DIR.rglob("*") if p.is_file())
    rebuilt = sorted(
        p.relative_to(tmp_path / "tasks") for p in (tmp_path / "tasks").rglob("*") if p.is_file()
    )
    assert rebuilt == committed
    for rel in committed:
        assert (tmp_path / "tasks" / rel).read_bytes() == (TASKS_DIR / rel).read_bytes(), rel
    assert not list(tmp_path.glob(".tasks-build-*"))  # the staging folder is gone
    total = sum((TASKS_DIR / rel).stat().st_size for rel in committed)
    assert total < 3 * 1024 * 1024


# --------------------------------------------------------------------------
# Names and errors (no model, no data)
# --------------------------------------------------------------------------


class Untouchable:
    """A model stand-in that fails on any use: errors must come before the model is touched."""

    def __getattr__(self, name):
        raise AssertionError(f"the model was touched ({name}) before the task check")


def test_paper_and_proxy_task_names_are_known_to_lm_eval():
    names = [name for row in task_table().values() for name in row.values()]
    assert check_tasks(names) == names
    assert check_tasks(["xnli", "mwanda_proxy_continuation", "mwanda_proxy"])  # group and tags
    assert task_names("xwinograd", ["ja"]) == ["xwinograd_jp"]
    assert task_names("proxy_udhr", ["de"]) == [proxy_task_name("udhr", "de")]


@pytest.mark.parametrize(
    ("task", "message"),
    [
        ("mwanda_proxy_continuation_xx", "unknown language 'xx' for benchmark 'proxy_continuation'"),
        ("xnli_ja", "unknown language 'ja' for benchmark 'xnli'"),
        ("belebele_xyz_Latn", "unknown language 'xyz_Latn' for benchmark 'belebele'"),
        ("not_a_task", "unknown task 'not_a_task'"),
    ],
)
def test_unknown_task_or_language_fails_before_the_model(task, message):
    with pytest.raises(ValueError, match=message):
        evaluate_tasks(Untouchable(), Untouchable(), ["mwanda_proxy_udhr_de", task])


def test_missing_proxy_files_name_the_build_command(tmp_path):
    with pytest.raises(ValueError, match="mwanda build tasks"):
        evaluate_tasks(Untouchable(), Untouchable(), ["mwanda_proxy_udhr_de"], include_path=tmp_path)


def test_task_names_errors():
    with pytest.raises(ValueError, match="unknown benchmark 'xnlii'"):
        task_names("xnlii")
    with pytest.raises(ValueError, match=r"no language \['ko'\]"):
        task_names("xnli", ["de", "ko"])


# --------------------------------------------------------------------------
# lm-eval against a direct computation
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tokenizer():
    return byte_bpe_tokenizer([load_text(lang, "dev")[:20_000] for lang in ("de", "ja")], 400)


@torch.no_grad()
def direct_loglikelihoods(model, tokenizer, context: str, continuations: list[str]) -> list[float]:
    """Sum of log p(continuation tokens | context) for each continuation, tokenized jointly."""
    n_ctx = len(tokenizer.encode(context))
    out = []
    for cont in continuations:
        ids = tokenizer.encode(context + cont)
        assert len(ids) < model.config.max_position_embeddings
        logp = torch.log_softmax(model(torch.tensor([ids[:-1]])).logits[0].double(), -1)
        out.append(sum(float(logp[i - 1, ids[i]]) for i in range(n_ctx, len(ids))))
    return out


def test_lm_eval_accuracy_matches_direct_computation(tokenizer):
    model = tiny_model("llama", layers=2, max_position_embeddings=2048, vocab_size=len(tokenizer))
    tasks = {("continuation", "de"): " ", ("udhr", "ja"): ""}
    names = [proxy_task_name(kind, lang) for kind, lang in tasks]
    limit = 6
    res = evaluate_tasks(model, tokenizer, names, batch_size=4, limit=limit, log_samples=True)
    rows = {row["task"]: row for row in res["rows"]}
    assert sorted(rows) == sorted(names)
    assert res["config"]["lm_eval"] == "0.4.13"
    for (kind, lang), delimiter in tasks.items():
        name = proxy_task_name(kind, lang)
        row = rows[name]
        assert row["benchmark"] == f"proxy_{kind}" and row["lang"] == lang and row["n"] == limit
        assert row["version"] == res["versions"][name] == 1.0
        assert res["metadata"][name]["data_sha256"]
        samples = sorted(res["samples"][name], key=lambda s: s["doc_id"])
        acc, acc_norm = [], []
        for item, sample in zip(read_items(kind, lang)[:limit], samples, strict=True):
            ours = direct_loglikelihoods(
                model, tokenizer, item["context"], [delimiter + c for c in item["choices"]]
            )
            theirs = [r[0] for r in sample["filtered_resps"]]
            assert theirs == pytest.approx(ours, rel=1e-4, abs=1e-3)
            acc.append(float(max(range(4), key=lambda i: ours[i]) == item["label"]))
            norm = [ll / len(c) for ll, c in zip(ours, item["choices"], strict=True)]
            acc_norm.append(float(max(range(4), key=lambda i: norm[i]) == item["label"]))
        assert row["acc"] == pytest.approx(sum(acc) / limit)
        assert row["acc_norm"] == pytest.approx(sum(acc_norm) / limit)
        assert math.isfinite(row["acc_stderr"])


def test_lm_eval_batch_size_is_auto_on_cuda_only():
    assert tasks_mod.lm_eval_batch_size(tiny_model("llama", layers=1), 16) == 16

    class OnCuda(torch.nn.Module):  # no GPU here: a module whose parameter says it is on one
        def parameters(self):
            yield type("Param", (), {"device": torch.device("cuda", 0)})()

    assert tasks_mod.lm_eval_batch_size(OnCuda(), 16) == "auto"
