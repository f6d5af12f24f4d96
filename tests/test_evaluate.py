"""Perplexity: window arithmetic, and agreement with lm-evaluation-harness."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import byte_bpe_tokenizer, tiny_model

from mwanda.evaluation.perplexity import paragraph_starts, perplexity, rolling_windows, split_by_paragraph

TEXTS = [
    "the quick brown fox jumps over the lazy dog. " * 12,
    "der schnelle braune fuchs springt über den faulen hund. " * 10,
    "短い日本語の文章です。" * 8,
]


@pytest.fixture(scope="module")
def tokenizer():
    return byte_bpe_tokenizer(TEXTS, 300)


def test_rolling_windows_cover_every_token_once():
    for n, w, s in [(1, 4, 4), (10, 4, 4), (10, 4, 2), (4, 4, 1), (13, 5, 3)]:
        wins = rolling_windows(n, w, s)
        predicted = [t for start, end, k in wins for t in range(end - k, end)]
        assert predicted == list(range(n))
        assert all(end - start <= w for start, end, _ in wins)


def test_bits_per_byte_and_char_definitions(tokenizer):
    model = tiny_model("llama", layers=2, max_position_embeddings=32, vocab_size=len(tokenizer))
    res = perplexity(model, tokenizer, TEXTS[2], window=16)
    assert res.bytes == len(TEXTS[2].encode()) and res.chars == len(TEXTS[2]) and res.bytes > res.chars
    assert res.bits_per_byte == pytest.approx(res.nll / math.log(2) / res.bytes)
    assert res.ppl == pytest.approx(math.exp(res.nll / res.tokens))


def test_batch_size_does_not_change_result(tokenizer):
    model = tiny_model("llama", layers=2, max_position_embeddings=32, vocab_size=len(tokenizer))
    a = perplexity(model, tokenizer, TEXTS[0], window=16, batch_size=1)
    b = perplexity(model, tokenizer, TEXTS[0], window=16, batch_size=7)
    assert a.nll == pytest.approx(b.nll, rel=1e-9)


@pytest.mark.parametrize("stride", [None, 8])
def test_matches_lm_eval_loglikelihood_rolling(tokenizer, stride):
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    model = tiny_model("llama", layers=2, max_position_embeddings=32, vocab_size=len(tokenizer))
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=4, max_length=32)
    for text in TEXTS:
        ours = perplexity(model, tokenizer, text, window=32, stride=stride)
        if stride is None:  # lm-eval's rolling loglikelihood is the non-overlapping case
            req = Instance(request_type="loglikelihood_rolling", doc={}, arguments=(text,), idx=0)
            (theirs,) = lm.loglikelihood_rolling([req], disable_tqdm=True)
            assert -ours.nll == pytest.approx(theirs, rel=1e-3)
        else:  # lm-eval's windows with context_len = window - stride + 1, summed by hand
            from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            wins = map(
                make_disjoint_window,
                get_rolling_token_windows(ids, tokenizer.bos_token_id, 32, 32 - stride + 1),
            )
            theirs = sum(
                r[0] for r in lm._loglikelihood_tokens([(None, *w) for w in wins], disable_tqdm=True)
            )
            assert -ours.nll == pytest.approx(theirs, rel=1e-3)


def test_paragraphs_split_the_totals(tokenizer):
    """Per-paragraph NLL and bytes add up to the text's; a paragraph owns the break after it."""
    paragraphs = [TEXTS[0][:90], TEXTS[2][:20], TEXTS[1][:70], "x"]
    text = "\n\n".join(paragraphs)
    model = tiny_model("llama", layers=2, max_position_embeddings=32, vocab_size=len(tokenizer))
    res = perplexity(model, tokenizer, text, window=16)
    assert len(res.paragraph_nll) == len(res.paragraph_bytes) == 4
    assert list(res.paragraph_bytes) == [len((p + "\n\n").encode()) for p in paragraphs[:-1]] + [1]
    assert sum(res.paragraph_bytes) == res.bytes
    assert sum(res.paragraph_nll) == pytest.approx(res.nll, rel=1e-12)
    assert all(v > 0 for v in res.paragraph_nll)


def test_tokens_go_to_the_paragraph_of_their_first_character():
    text = "ab\n\ncd\n\n\n\nef"  # the third paragraph is empty
    assert paragraph_starts(text) == [0, 4, 8, 10]
    starts = [0, 1, 2, 4, 6, 8, 10, 11]  # a token starting inside a break belongs before it
    out = split_by_paragraph(text, torch.arange(1.0, 9.0, dtype=torch.float64), starts)
    assert out["paragraph_nll"] == (1 + 2 + 3, 4 + 5, 6, 7 + 8)
    assert out["paragraph_bytes"] == (4, 4, 2, 2)


def test_tokenizer_without_offsets_gives_totals_only(tokenizer):
    class Slow:  # what a slow (Python) tokenizer does when asked for offsets
        bos_token_id, eos_token_id = tokenizer.bos_token_id, tokenizer.eos_token_id

        def __call__(self, text, add_special_tokens=False, return_offsets_mapping=False):
            if return_offsets_mapping:
                raise NotImplementedError("return_offset_mapping is not available")
            return tokenizer(text, add_special_tokens=add_special_tokens)

    model = tiny_model("llama", layers=2, max_position_embeddings=32, vocab_size=len(tokenizer))
    slow = perplexity(model, Slow(), TEXTS[0], window=16)
    fast = perplexity(model, tokenizer, TEXTS[0], window=16)
    assert slow.nll == fast.nll and slow.paragraph_nll == () and len(fast.paragraph_nll) == 1
