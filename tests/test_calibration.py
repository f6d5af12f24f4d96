"""Calibration sets: balanced sampling, JSONL round trips, and every bad input."""

from __future__ import annotations

import json

import pytest
import torch

from mwanda.core.calibration import (
    CalibrationError,
    CalibrationSet,
    build_balanced,
    check_language_tag,
    read_text_jsonl,
    read_tokens_jsonl,
    split_evenly,
    write_tokens_jsonl,
)


class CharTokenizer:
    """Minimal tokenizer: one token per character code point (mod 128)."""

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [ord(c) % 128 for c in text]}


def test_split_evenly_spreads_remainder():
    assert split_evenly(10, ["a", "b", "c"]) == {"a": 4, "b": 3, "c": 3}
    with pytest.raises(CalibrationError, match="--nsamples"):
        split_evenly(2, ["a", "b", "c"])


def test_build_balanced_counts_lengths_and_seed():
    texts = {"en": "hello world " * 50, "de": "hallo welt " * 50, "ja": "こんにちは世界" * 40}
    a = build_balanced(texts, CharTokenizer(), nsamples=8, seqlen=32, seed=3)
    b = build_balanced(texts, CharTokenizer(), nsamples=8, seqlen=32, seed=3)
    c = build_balanced(texts, CharTokenizer(), nsamples=8, seqlen=32, seed=4)
    assert a.input_ids.shape == (8, 32) and a.langs == ("en",) * 3 + ("de",) * 3 + ("ja",) * 2
    assert torch.equal(a.input_ids, b.input_ids) and not torch.equal(a.input_ids, c.input_ids)
    assert a.token_counts() == {"en": 96, "de": 96, "ja": 64}


def test_short_language_is_an_error_not_a_skip():
    with pytest.raises(CalibrationError, match="'de' has 5 tokens"):
        build_balanced({"en": "x" * 100, "de": "short"}, CharTokenizer(), nsamples=4, seqlen=16)


@pytest.mark.parametrize("tag", ["de", "deu", "deu_Latn", "zh", "pt-BR"])
def test_known_tags(tag):
    assert check_language_tag(tag) == tag


@pytest.mark.parametrize("tag", ["xx", "english", "", "DE", 3, None])
def test_unknown_tags(tag):
    with pytest.raises(CalibrationError, match="unknown language tag"):
        check_language_tag(tag)


def test_tokens_jsonl_round_trip(tmp_path):
    calib = CalibrationSet(torch.arange(12).reshape(3, 4), ("en", "de", "en"))
    write_tokens_jsonl(calib, tmp_path / "c.jsonl")
    back = read_tokens_jsonl(tmp_path / "c.jsonl")
    assert torch.equal(back.input_ids, calib.input_ids) and back.langs == calib.langs
    assert not list(tmp_path.glob(".*tmp"))  # no temporary file left behind


def _write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_unequal_lengths_rejected(tmp_path):
    p = _write(
        tmp_path / "c.jsonl", [{"lang": "en", "input_ids": [1, 2, 3]}, {"lang": "de", "input_ids": [1, 2]}]
    )
    with pytest.raises(CalibrationError, match=r"c.jsonl:2: .*same length"):
        read_tokens_jsonl(p)


def test_unknown_tag_in_file_names_line(tmp_path):
    p = _write(
        tmp_path / "c.jsonl", [{"lang": "en", "input_ids": [1, 2]}, {"lang": "klingon", "input_ids": [1, 2]}]
    )
    with pytest.raises(CalibrationError, match=r"c.jsonl:2: unknown language tag 'klingon'"):
        read_tokens_jsonl(p)


def test_bad_json_and_missing_file(tmp_path):
    (tmp_path / "bad.jsonl").write_text('{"lang": "en", \n')
    with pytest.raises(CalibrationError, match="bad.jsonl:1: not valid JSON"):
        read_tokens_jsonl(tmp_path / "bad.jsonl")
    with pytest.raises(CalibrationError, match="does not exist"):
        read_tokens_jsonl(tmp_path / "missing.jsonl")


def test_text_jsonl_groups_by_language(tmp_path):
    p = _write(
        tmp_path / "t.jsonl",
        [{"lang": "en", "text": "a"}, {"lang": "de", "text": "b"}, {"lang": "en", "text": "c"}],
    )
    assert read_text_jsonl(p) == {"en": "a\n\nc", "de": "b"}


def test_calibration_set_validates_shape():
    with pytest.raises(CalibrationError, match="one tag per sequence"):
        CalibrationSet(torch.zeros(2, 3, dtype=torch.long), ("en",))
