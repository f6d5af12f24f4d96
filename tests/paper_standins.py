"""Local stand-ins for the paper profile's Hub datasets, in their exact schemas, built from the
embedded corpus: what `tests/test_paper_path.py` runs the paper data path on, offline.

- FLORES+ (`openlanguagedata/flores_plus`): one config per language named ISO 639-3 + script
  (`deu_Latn`, `cmn_Hans`), splits `dev` and `devtest` as parquet, FLORES+'s columns (`id`,
  `iso_639_3`, `iso_15924`, `glottocode`, `text`, `url`, `domain`, `topic`, `has_image`,
  `has_hyperlink`, `last_updated`); parallel sentences (here: the embedded dev / test paragraphs).
- CulturaX (`uonlp/CulturaX`): one config per ISO 639-1 code, split `train`, columns `text`,
  `timestamp`, `url`, `source` (here: the embedded calibration paragraphs).
- The six paper tasks' datasets (`facebook/xnli`, `cambridgeltl/xcopa`, `juletxara/xstory_cloze`,
  `Muennighoff/xwinograd`, `google-research-datasets/paws-x`, `facebook/belebele`): the Hub id,
  config names and splits are read from lm-eval's own task configs, the columns are each
  dataset's, and a handful of items per language are cut from the embedded test paragraphs
  (the stand-ins test the plumbing; their labels mean nothing).

Each is a folder named like the Hub dataset, with the dataset card's `configs:` header that the
`datasets` library reads for Hub repositories too.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from mwanda import data
from mwanda.evaluation import tasks

FLORES_SPLITS = {"dev": "dev", "devtest": "test"}  # FLORES+ split -> embedded split
# Llama-3.1-8B's config.json (the architecture): the stand-in model scales it down, and
# benchmarks/gpu_check.py builds it at full size with random weights.
LLAMA31_8B = dict(
    hidden_size=4096,
    intermediate_size=14336,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=8,
    vocab_size=128256,
    max_position_embeddings=131072,
    rope_theta=500000.0,
    rope_scaling={
        "rope_type": "llama3",
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192,
    },
    rms_norm_eps=1e-5,
    tie_word_embeddings=False,
)


def _card(configs: dict[str, dict[str, str]]) -> str:
    """A dataset card header: config -> {split: path}."""
    lines = ["---", "configs:"]
    for name, files in configs.items():
        lines += [f"- config_name: {name}", "  data_files:"]
        lines += [f"  - split: {split}\n    path: {path}" for split, path in files.items()]
    return "\n".join(lines + ["---", ""])


def flores_plus(root: Path, langs: list[str], paragraphs: int = 40) -> Path:
    """A FLORES+-shaped folder ``root/flores_plus`` for ``langs``."""
    out, table, configs = root / "flores_plus", data.language_table(), {}
    for split, ours in FLORES_SPLITS.items():
        ids = list(data.load_parallel(langs, ours)[langs[0]])[:paragraphs]
        for lang in langs:
            row, text = table[lang], data.load_paragraphs(lang, ours)
            iso3, script = row.flores.split("_")
            frame = pd.DataFrame(
                {
                    "id": range(1, len(ids) + 1),
                    "iso_639_3": iso3,
                    "iso_15924": script,
                    "glottocode": "",
                    "text": [text[i] for i in ids],
                    "url": "",
                    "domain": "wikinews",
                    "topic": "",
                    "has_image": False,
                    "has_hyperlink": False,
                    "last_updated": "2.1",
                }
            )
            (out / split).mkdir(parents=True, exist_ok=True)
            frame.to_parquet(out / split / f"{row.flores}.parquet")
            configs.setdefault(row.flores, {})[split] = f"{split}/{row.flores}.parquet"
    (out / "README.md").write_text(_card(configs), encoding="utf-8")
    return out


def culturax(root: Path, langs: list[str]) -> Path:
    """A CulturaX-shaped folder ``root/CulturaX`` for ``langs`` (configs by ISO 639-1 code)."""
    out, configs = root / "CulturaX", {}
    for lang in langs:
        texts = list(data.load_paragraphs(lang, "calib").values())
        frame = pd.DataFrame({"text": texts, "timestamp": "2021/01/01", "url": "", "source": "mC4"})
        (out / lang).mkdir(parents=True, exist_ok=True)
        frame.to_parquet(out / lang / f"{lang}_part_00000.parquet")
        configs[lang] = {"train": f"{lang}/{lang}_part_00000.parquet"}
    (out / "README.md").write_text(_card(configs), encoding="utf-8")
    return out


def llama31_like(path: Path, tokenizer) -> Path:
    """A random-weight model whose config is Llama-3.1-8B's architecture scaled down: llama3 rope
    scaling, grouped-query attention 4:1, untied embeddings, saved in bfloat16."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    small = dict(hidden_size=64, intermediate_size=224, num_hidden_layers=2, num_attention_heads=8)
    small |= dict(num_key_value_heads=2, vocab_size=len(tokenizer))  # grouped-query ratio kept: 4
    ids = dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    cfg = LlamaConfig(**(LLAMA31_8B | small | ids))
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).to(torch.bfloat16).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


# One row of each task dataset, in its Hub columns, from six snippets ``s`` of one language.
def _xnli(s: list[str], i: int) -> dict:
    return {"premise": s[0], "hypothesis": s[1], "label": i % 3}


def _xcopa(s: list[str], i: int) -> dict:
    question = ("cause", "effect")[i % 2]
    return {"premise": s[0] + ".", "choice1": s[1], "choice2": s[2], "question": question, "label": i % 2}


def _xstory_cloze(s: list[str], i: int) -> dict:
    story = {f"input_sentence_{k + 1}": s[k] for k in range(4)}
    ends = {"sentence_quiz1": s[4], "sentence_quiz2": s[5], "answer_right_ending": 1 + i % 2}
    return {"story_id": f"story-{i}"} | story | ends


def _xwinograd(s: list[str], i: int) -> dict:
    return {"sentence": f"{s[0]} _ {s[1]}", "option1": s[2], "option2": s[3], "answer": str(1 + i % 2)}


def _paws_x(s: list[str], i: int) -> dict:
    return {"id": i + 1, "sentence1": s[0], "sentence2": s[1], "label": i % 2}


def _belebele(s: list[str], i: int) -> dict:
    answers = {f"mc_answer{k + 1}": s[2 + k] for k in range(4)}
    head = {"link": f"https://example.org/{i}", "question_number": 1 + i % 2}
    body = {"flores_passage": " ".join(s), "question": s[1] + "?", "correct_answer_num": str(1 + i % 4)}
    return head | body | answers | {"ds": pd.Timestamp("2023-01-01")}


TASK_ROWS: dict[str, Callable[[list[str], int], dict]] = {
    "xnli": _xnli,
    "xcopa": _xcopa,
    "xstorycloze": _xstory_cloze,
    "xwinograd": _xwinograd,
    "pawsx": _paws_x,
    "belebele": _belebele,
}
SPLIT_KEYS = ("training_split", "validation_split", "test_split", "fewshot_split")


def _snippets(lang: str, n: int) -> list[str]:
    """``n`` short pieces (at most 60 characters, cut at a space where there is one) of the
    language's test paragraphs."""
    out = []
    for text in data.load_paragraphs(lang, "test").values():
        for start in range(0, len(text) - 20, 60):
            piece = text[start : start + 60]
            piece = piece.rsplit(" ", 1)[0] if " " in piece[20:] else piece
            out.append(piece.strip())
            if len(out) == n:
                return out
    raise ValueError(f"not enough test text in {lang!r} for {n} snippets")


def lm_eval_tasks(root: Path, langs: list[str], items: int = 3) -> Path:
    """A mirror ``root/tasks`` of the six paper tasks' Hub datasets for ``langs`` (those each
    benchmark covers): ``<hub id>/<split>/<config>.parquet`` and the card's ``configs:``."""
    out, cards = root / "tasks", {}
    for bench, make_row in TASK_ROWS.items():
        row = tasks.task_table()[bench]
        for lang in (lang for lang in langs if lang in row):
            name = row[lang]
            hub_id, config = (tasks.lm_eval_task_field(name, k) for k in ("dataset_path", "dataset_name"))
            splits = {tasks.lm_eval_task_field(name, k) for k in SPLIT_KEYS} - {None}
            pieces = _snippets(lang, 6 * items)
            rows = [make_row(pieces[6 * i : 6 * i + 6], i) for i in range(items)]
            if bench == "belebele":
                rows = [r | {"dialect": config} for r in rows]
            for split in sorted(splits):
                (out / hub_id / split).mkdir(parents=True, exist_ok=True)
                pd.DataFrame(rows).to_parquet(out / hub_id / split / f"{config}.parquet")
                cards.setdefault(hub_id, {}).setdefault(config, {})[split] = f"{split}/{config}.parquet"
    for hub_id, configs in cards.items():
        (out / hub_id / "README.md").write_text(_card(configs), encoding="utf-8")
    return out
