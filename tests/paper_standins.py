"""Local stand-ins for the paper profile's Hub datasets, in their exact schemas, built from the
embedded corpus: what `tests/test_paper_path.py` runs the paper data path on, offline.

- FLORES+ (`openlanguagedata/flores_plus`): one config per language named ISO 639-3 + script
  (`deu_Latn`, `cmn_Hans`), splits `dev` and `devtest` as parquet, FLORES+'s columns (`id`,
  `iso_639_3`, `iso_15924`, `glottocode`, `text`, `url`, `domain`, `topic`, `has_image`,
  `has_hyperlink`, `last_updated`); parallel sentences (here: the embedded dev / test paragraphs).
- CulturaX (`uonlp/CulturaX`): one config per ISO 639-1 code, split `train`, columns `text`,
  `timestamp`, `url`, `source` (here: the embedded calibration paragraphs).

Each is a folder named like the Hub dataset, with the dataset card's `configs:` header that the
`datasets` library reads for Hub repositories too.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mwanda import data

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
