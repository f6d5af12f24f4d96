"""Per-language perplexity, in token units and in tokenizer-independent bits per byte / char.

The windows are lm-evaluation-harness's own (``lm_eval.utils.get_rolling_token_windows``, as
its ``loglikelihood_rolling`` uses them): the first token is predicted from a prefix token (BOS, or EOS
when there is none), then each window of ``window`` tokens predicts the next ``stride`` tokens
that no earlier window predicted, conditioning on as much preceding text as fits. With
``stride == window`` (the default) prediction windows do not overlap, and the sum of
log-likelihoods equals lm-eval's with ``context_len=1``. Token perplexities are not comparable
across languages (tokenizers split languages differently), so compare bits per byte. This is the
repository's one perplexity: the experiment runner and the tiny model's card both call it.

Evaluation texts are paragraphs joined by blank lines (``data.parallel_text``, FLORES+ sentences
likewise), and the same paragraphs in every language. ``perplexity`` also splits the summed NLL
and the bytes by paragraph (each token counts for the paragraph its first character is in; a
paragraph owns the blank line after it), so an interval can resample paragraphs: the bootstrap
in ``study.uncertainty`` does.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

Tensor = torch.Tensor


@dataclass(frozen=True)
class Perplexity:
    """Summed negative log-likelihood (nats) of a text and what it was measured over."""

    nll: float
    tokens: int
    bytes: int
    chars: int
    # per paragraph (``PARAGRAPH_BREAK``-separated, in text order): summed NLL and UTF-8 bytes;
    # empty when the tokenizer cannot map tokens to characters (no offsets: a slow tokenizer)
    paragraph_nll: tuple[float, ...] = ()
    paragraph_bytes: tuple[int, ...] = ()

    @property
    def ppl(self) -> float:
        return math.exp(self.nll / self.tokens)

    @property
    def bits_per_byte(self) -> float:
        return self.nll / math.log(2) / self.bytes

    @property
    def bits_per_char(self) -> float:
        return self.nll / math.log(2) / self.chars

    def to_dict(self) -> dict:
        """The totals and the three measures (the paragraph split stays out: the model card)."""
        totals = {k: v for k, v in asdict(self).items() if not k.startswith("paragraph_")}
        return totals | {"ppl": self.ppl, "bpb": self.bits_per_byte, "bpc": self.bits_per_char}


# What separates the paragraphs of an evaluation text (``data.parallel_text``, ``hub_data.load_hf_text``).
PARAGRAPH_BREAK = "\n\n"


def paragraph_starts(text: str) -> list[int]:
    """Character offset where each paragraph starts (the first is 0)."""
    starts, at = [0], text.find(PARAGRAPH_BREAK)
    while at != -1:
        starts.append(at + len(PARAGRAPH_BREAK))
        at = text.find(PARAGRAPH_BREAK, at + len(PARAGRAPH_BREAK))
    return starts


def rolling_windows(n_tokens: int, window: int, stride: int) -> list[tuple[int, int, int]]:
    """(input_start, input_end, n_predicted) per window over token positions 0..n_tokens-1.

    The windows are lm-eval's own (``get_rolling_token_windows`` with
    ``context_len = window - stride + 1``), expressed as positions in ``[prefix] + tokens``:
    input [s, e) predicts the last ``n_predicted`` tokens of ``tokens[s:e]``.
    """
    from lm_eval.utils import get_rolling_token_windows

    if not 1 <= stride <= window:
        raise ValueError(f"stride must be in [1, window={window}], got {stride}.")
    out, end = [], 0
    for inputs, predicted in get_rolling_token_windows(
        list(range(n_tokens)), -1, window, window - stride + 1
    ):
        end += len(predicted)
        out.append((end - len(inputs), end, len(predicted)))
    return out


def prefix_token_id(tokenizer) -> int:
    """lm-eval's choice: BOS if the tokenizer has one, else EOS."""
    token = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    if token is None:
        raise ValueError("the tokenizer has neither a BOS nor an EOS token to condition the first token on.")
    return token


def context_length(model) -> int:
    cfg = model.config
    for key in ("max_position_embeddings", "n_positions", "seq_length"):
        if getattr(cfg, key, None):
            return int(getattr(cfg, key))
    raise ValueError(f"cannot tell the context length of {type(model).__name__}; pass window=.")


@torch.no_grad()
def token_nlls(
    model, ids: list[int], prefix: int, window: int, stride: int, batch_size: int = 8
) -> tuple[float, Tensor]:
    """(summed NLL in nats, the NLL of every token [len(ids)], float64) of ``ids`` under ``model``
    with rolling windows (module doc). The sum adds window by window, in window order, whatever
    the batch size."""
    seq = torch.tensor([prefix, *ids], dtype=torch.long)
    per_token = torch.zeros(len(ids), dtype=torch.float64)
    # Input [s, e) of the token list is seq[s : e] shifted by the prefix: seq[s .. e-1] -> tokens s..e-1
    # i.e. the model reads seq[s:e] (prefix included when s == 0) and predicts seq[s+1 : e+1].
    wins = rolling_windows(len(ids), window, stride)
    device = model.get_input_embeddings().weight.device
    total = 0.0
    by_len: dict[int, list[tuple[int, int, int]]] = {}
    for w in wins:
        by_len.setdefault(w[1] - w[0], []).append(w)
    for length, group in by_len.items():
        for i in range(0, len(group), batch_size):
            chunk = group[i : i + batch_size]
            inputs = torch.stack([seq[s:e] for s, e, _ in chunk]).to(device)
            targets = torch.stack([seq[s + 1 : e + 1] for s, e, _ in chunk]).to(device)
            logits = model(inputs, use_cache=False).logits.float()
            # rows of [B * length, vocab]: the contiguous layout is about 3x faster than the
            # class-dimension-second one on CPU (same float32 sums up to their order)
            flat = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none")
            nll = flat.view(len(chunk), length)  # [B, length]
            for row, (_, e, n_pred) in zip(nll, chunk, strict=True):
                predicted = row[length - n_pred :].double()  # the NLLs of ids[e - n_pred : e]
                per_token[e - n_pred : e] = predicted
                total += float(predicted.sum())
    return total, per_token


def perplexity(
    model, tokenizer, text: str, window: int | None = None, stride: int | None = None, batch_size: int = 8
) -> Perplexity:
    """Perplexity of ``text`` (tokenized without special tokens, as lm-eval does), with its NLL
    and bytes per paragraph (module doc) when the tokenizer gives character offsets."""
    if not text:
        raise ValueError("cannot measure perplexity on empty text.")
    window = window or context_length(model)
    enc, offsets = _encode(tokenizer, text)
    ids = enc["input_ids"]
    nll, per_token = token_nlls(model, ids, prefix_token_id(tokenizer), window, stride or window, batch_size)
    per_paragraph: dict = {}
    if offsets is not None:
        per_paragraph = split_by_paragraph(text, per_token, [start for start, _ in offsets])
    size = {"tokens": len(ids), "bytes": len(text.encode("utf-8")), "chars": len(text)}
    return Perplexity(nll=nll, **size, **per_paragraph)


def _encode(tokenizer, text: str) -> tuple[dict, list | None]:
    """The tokenization and each token's (start, end) characters, or None without offsets."""
    try:
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    except NotImplementedError:  # slow (Python) tokenizers have no offsets
        return tokenizer(text, add_special_tokens=False), None
    return enc, enc["offset_mapping"]


def split_by_paragraph(text: str, per_token: Tensor, token_starts: list[int]) -> dict:
    """``paragraph_nll`` and ``paragraph_bytes`` of ``text``: each token's NLL goes to the
    paragraph its first character is in; a paragraph's bytes include the break after it, so
    both add up to the text's totals."""
    starts = paragraph_starts(text)
    owner = torch.tensor([bisect.bisect_right(starts, c) - 1 for c in token_starts], dtype=torch.long)
    nll = torch.zeros(len(starts), dtype=torch.float64).index_add_(0, owner, per_token)
    ends = [*starts[1:], len(text)]
    return {
        "paragraph_nll": tuple(nll.tolist()),
        "paragraph_bytes": tuple(len(text[a:b].encode("utf-8")) for a, b in zip(starts, ends, strict=True)),
    }


def per_language_perplexity(
    model,
    tokenizer,
    texts: Mapping[str, str],
    window: int | None = None,
    stride: int | None = None,
    batch_size: int = 8,
    progress: bool = True,
) -> dict[str, Perplexity]:
    """``perplexity`` for each language's text, with a progress bar over languages."""
    return {
        lang: perplexity(model, tokenizer, text, window, stride, batch_size)
        for lang, text in tqdm(texts.items(), desc="perplexity", unit="lang", disable=not progress)
    }
