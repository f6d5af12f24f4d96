"""Issue 12's cost law: the statistics' bytes per block, checked against a real prune."""

import math

import pytest
from conftest import tiny_calib, tiny_model
from transformers import AutoTokenizer

from mwanda import data, udhr
from mwanda.core.config import PruneConfig
from mwanda.core.prune import prune_model
from mwanda.data import EMBEDDED_DIR, DataError
from mwanda.study import scaling

TINY = scaling.LlamaShape(hidden=32, intermediate=64, kv_dim=16, dtype_bytes=4)  # conftest's tiny Llama


@pytest.mark.parametrize(
    ("keys", "law"),
    [
        ({"method": "wanda"}, {}),
        ({"method": "mwanda"}, {}),  # beta = 0: no activity counts
        ({"method": "mwanda", "beta": 1.0}, {"activity": True}),
        ({"method": "mwanda", "variation": "anova"}, {"sums": True}),
        ({"method": "sparsegpt"}, {"hessian": True}),
    ],
)
def test_the_law_is_what_a_prune_holds(keys, law):
    for langs in (("en", "de"), ("en", "de", "fr", "ja")):
        model = tiny_model(layers=2)
        assert sum(p.numel() for p in model.model.layers[0].parameters() if p.ndim == 2) == TINY.block_params
        cfg = PruneConfig(sparsity=0.5, **keys)
        report = prune_model(model, tiny_calib(n_per_lang=2, langs=langs), cfg, progress=False)
        held = report.peak_memory["block_statistics_mib"] * 2**20
        assert held == scaling.llama_block_bytes(TINY, len(langs), **law)


def test_llama_8b_shape_and_growth():
    shape = scaling.LLAMA_31_8B
    assert shape.block_params * scaling.LLAMA_31_8B_BLOCKS == 6_979_321_856  # 8.03B minus embeddings
    assert scaling.llama_params(shape, scaling.LLAMA_31_8B_BLOCKS, scaling.LLAMA_31_8B_VOCAB) == 8_030_261_248
    one, two = (scaling.llama_block_bytes(shape, n) for n in (1000, 2000))
    assert two == 2 * one  # linear in L at a fixed token budget
    assert scaling.llama_block_bytes(shape, 15) == 8 * 15 * (7 + 6 * 4096 + 14336)
    assert scaling.cwl_block_bytes(shape, 2000) == 8 * (2000 * 8193 + 2000**2)


def test_fit_power_recovers_the_exponent_and_refuses_one_size():
    a, k = scaling.fit_power([10, 100, 1000], [3 * n**2 for n in (10, 100, 1000)])
    assert math.isclose(k, 2.0) and math.isclose(a, 3.0)
    with pytest.raises(ValueError, match="two different sizes"):
        scaling.fit_power([5, 5], [1, 2])


def test_time_cwl_runs_the_allocation_code():
    assert scaling.time_cwl(8, 64, repeats=1) > 0


def test_language_ladder_adds_unseen_udhr_languages_after_the_corpus():
    ladder = scaling.language_ladder(40, min_bytes=64)
    assert ladder[:30] == data.languages("calib") + data.languages("heldout")
    table = udhr.udhr_table()
    assert all(table[t].embedded is None and table[t].same_language_as is None for t in ladder[30:])
    assert ladder == scaling.language_ladder(40, min_bytes=64)  # seeded
    with pytest.warns(udhr.UdhrWarning, match="skipped .* UDHR declarations with fewer than"):
        short = scaling.language_ladder(31, min_bytes=12_000)
    assert table[short[30]].bytes >= 12_000
    with pytest.raises(ValueError, match="ask for at most"):
        scaling.language_ladder(10_000, min_bytes=64)


def test_prune_cost_calibrates_on_unseen_languages_and_caches(tmp_path):
    tok = AutoTokenizer.from_pretrained(EMBEDDED_DIR / "models" / "tiny-ml-llama")
    model = tiny_model(layers=2, vocab_size=len(tok))
    calls = []

    def compute():
        calls.append(1)
        cfg = PruneConfig(method="mwanda", sparsity=0.5)
        return [scaling.prune_cost(model, tok, ["en", "afr", "ace"], cfg, tokens=6 * 32, seqlen=32)]

    rows = scaling.cached(tmp_path, {"n": 3}, compute)
    assert rows[0]["languages"] == 3 and rows[0]["prune_s"] > 0
    assert rows[0]["statistics_mib"] * 2**20 == scaling.llama_block_bytes(TINY, 3)
    assert scaling.cached(tmp_path, {"n": 3}, compute) == rows and len(calls) == 1
    assert [p.suffix for p in (tmp_path / scaling.CACHE_FOLDER).iterdir()] == [".json"]
    with pytest.raises(DataError, match="'eng' \\('en'\\)"):
        scaling.prune_cost(model, tok, ["de", "eng"], PruneConfig(method="wanda"), tokens=64, seqlen=32)


def test_cost_sweep_measures_every_variant_at_every_size():
    tok = AutoTokenizer.from_pretrained(EMBEDDED_DIR / "models" / "tiny-ml-llama")
    model = tiny_model(layers=2, vocab_size=len(tok))
    variants = {"mwanda": {"method": "mwanda"}, "mwanda+cwl": {"method": "mwanda", "allocation": "cwl"}}
    rows = scaling.cost_sweep(model, tok, ["en", "de", "afr"], [2, 3], variants, tokens=6 * 32, seqlen=32)
    assert [(r["label"], r["languages"]) for r in rows] == [
        ("mwanda", 2),
        ("mwanda+cwl", 2),
        ("mwanda", 3),
        ("mwanda+cwl", 3),
    ]
    assert all(r["statistics_mib"] * 2**20 == scaling.llama_block_bytes(TINY, r["languages"]) for r in rows)
