"""Calibration sets: fixed-length token sequences, each tagged with a language.

A calibration set is what every pruning method sees of the data. It is built once (balanced
over languages, random windows drawn with a seed) and can be saved as JSONL so that several
methods and runs see exactly the same tokens.
"""

from __future__ import annotations

import json
import re
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from mwanda.errors import MwandaWarning, UserError
from mwanda.io import atomic_write_text

_TAG = re.compile(r"^([a-z]{2,3})(?:[-_][A-Za-z0-9]{2,8})*$")


class CalibrationError(UserError, ValueError):
    """Bad calibration input; the message names the fix."""


def check_language_tag(tag: object) -> str:
    """Return ``tag`` if it is a known ISO 639 language tag ('de', 'deu', 'deu_Latn', 'pt-BR').

    The primary subtag is looked up in ISO 639-1/639-3 (via pycountry), so typos such as
    'english' or 'xx' are caught before any model work starts.
    """
    import pycountry  # local: only needed when tags are checked

    match = _TAG.match(tag) if isinstance(tag, str) else None
    primary = match.group(1) if match else None
    known = primary and (pycountry.languages.get(alpha_2=primary) or pycountry.languages.get(alpha_3=primary))
    if not known:
        raise CalibrationError(
            f"unknown language tag {tag!r}: use an ISO 639-1 or 639-3 code such as 'de', "
            "'zh' or 'deu_Latn' (FLORES style)."
        )
    return tag


@dataclass(frozen=True)
class CalibrationSet:
    """``input_ids`` is [N, T] (int64); ``langs[i]`` is the language of sequence i."""

    input_ids: torch.Tensor
    langs: tuple[str, ...]

    def __post_init__(self) -> None:
        ids = self.input_ids
        if ids.ndim != 2 or ids.dtype != torch.long:
            raise CalibrationError("input_ids must be a 2-D int64 tensor [nsamples, seqlen].")
        if ids.shape[0] != len(self.langs) or ids.shape[0] == 0:
            raise CalibrationError(
                f"{ids.shape[0]} sequences but {len(self.langs)} language tags; give one tag "
                "per sequence (and at least one sequence)."
            )
        for tag in set(self.langs):
            check_language_tag(tag)

    @property
    def nsamples(self) -> int:
        return self.input_ids.shape[0]

    @property
    def seqlen(self) -> int:
        return self.input_ids.shape[1]

    @property
    def languages(self) -> list[str]:
        """Languages in order of first appearance."""
        return list(dict.fromkeys(self.langs))

    def lang_index(self) -> torch.Tensor:
        """[N] int64: position of each sequence's language in ``self.languages``."""
        pos = {lang: i for i, lang in enumerate(self.languages)}
        return torch.tensor([pos[lang] for lang in self.langs], dtype=torch.long)

    def token_counts(self) -> dict[str, int]:
        return {lang: n * self.seqlen for lang, n in Counter(self.langs).items()}

    def subset(self, languages: Sequence[str]) -> CalibrationSet:
        """Only the sequences of ``languages`` (order kept)."""
        keep = [i for i, lang in enumerate(self.langs) if lang in set(languages)]
        missing = set(languages) - set(self.langs)
        if missing:
            raise CalibrationError(f"languages {sorted(missing)} are not in this calibration set.")
        return CalibrationSet(self.input_ids[keep], tuple(self.langs[i] for i in keep))


def split_evenly(nsamples: int, languages: Sequence[str]) -> dict[str, int]:
    """Sequences per language: nsamples // L each, the remainder to the first languages."""
    if nsamples < len(languages):
        raise CalibrationError(
            f"nsamples={nsamples} is smaller than the {len(languages)} languages; raise "
            "--nsamples to at least one sequence per language."
        )
    base, extra = divmod(nsamples, len(languages))
    return {lang: base + (i < extra) for i, lang in enumerate(languages)}


def random_windows(ids: torch.Tensor, count: int, seqlen: int, gen: torch.Generator) -> torch.Tensor:
    """``count`` windows of ``seqlen`` tokens at uniformly random starts (as Wanda's loaders)."""
    starts = torch.randint(0, ids.numel() - seqlen + 1, (count,), generator=gen)
    return torch.stack([ids[s : s + seqlen] for s in starts.tolist()])


# A language whose text offers fewer distinct windows than the sequences asked of it is an
# error: its calibration would repeat the same tokens. Windows that overlap (the text is shorter
# than count x seqlen tokens) still differ, so that only warns, with the numbers.
def check_windows(lang: str, n_tokens: int, count: int, seqlen: int) -> None:
    """Fail if ``n_tokens`` of text cannot give ``count`` distinct windows; warn if they overlap."""
    distinct = n_tokens - seqlen + 1
    if n_tokens < seqlen or distinct < count:
        raise CalibrationError(
            f"language {lang!r} has {n_tokens} tokens of calibration text: {max(distinct, 0)} distinct "
            f"windows of {seqlen} tokens for {count} sequences; add text for {lang!r}, lower --seqlen "
            "or --nsamples, or drop the language."
        )
    if n_tokens < count * seqlen:
        warnings.warn(
            f"language {lang!r}: {count} windows of {seqlen} tokens drawn from {n_tokens} tokens of text "
            f"overlap (only {n_tokens} distinct tokens); add text for {lang!r} for independent windows.",
            CalibrationWarning,
            stacklevel=3,
        )


class CalibrationWarning(MwandaWarning):
    """Calibration works but sees less distinct text than asked for."""


def check_context(seqlen: int, context: int | None) -> None:
    """A calibration sequence must fit the model's context (positions beyond it are untrained)."""
    if context is not None and seqlen > context:
        raise CalibrationError(
            f"calibration sequences of {seqlen} tokens are longer than the model's context of {context} "
            f"tokens; use --seqlen {context} or less (or shorter --calib-tokens sequences)."
        )


def build_balanced(
    texts: Mapping[str, str],
    tokenizer,
    nsamples: int,
    seqlen: int,
    seed: int = 0,
) -> CalibrationSet:
    """Balanced calibration: ``nsamples`` split evenly over the languages of ``texts``.

    Each language's text is tokenized once (no special tokens) and windows are drawn from it
    with a generator seeded by ``seed``. A language whose text has fewer than ``seqlen`` tokens
    is an error, never a silent skip.
    """
    ids = {lang: token_ids(tokenizer, text) for lang, text in texts.items()}
    return balanced_windows(ids, nsamples, seqlen, seed)


def token_ids(tokenizer, text: str) -> torch.Tensor:
    """``text`` tokenized as calibration reads it: no special tokens, int64."""
    return torch.tensor(tokenizer(text, add_special_tokens=False)["input_ids"], dtype=torch.long)


def balanced_windows(
    ids: Mapping[str, torch.Tensor], nsamples: int, seqlen: int, seed: int = 0
) -> CalibrationSet:
    """``build_balanced`` on texts already tokenized (``token_ids``), in the same order: the
    same windows. A caller that calibrates many times on the same texts tokenizes them once.
    Languages are checked here, so both ways in refuse the same input."""
    if not ids:
        raise CalibrationError("no calibration text given; pass at least one language.")
    for lang in ids:
        check_language_tag(lang)
    counts = split_evenly(nsamples, list(ids))
    gen = torch.Generator().manual_seed(seed)
    rows, langs = [], []
    for lang, lang_ids in ids.items():
        check_windows(lang, lang_ids.numel(), counts[lang], seqlen)
        rows.append(random_windows(lang_ids, counts[lang], seqlen, gen))
        langs += [lang] * counts[lang]
    return CalibrationSet(torch.cat(rows), tuple(langs))


def read_text_jsonl(path: str | Path) -> dict[str, str]:
    """``{"lang": .., "text": ..}`` lines -> one text per language (lines joined by blank lines)."""
    parts: dict[str, list[str]] = {}
    for lineno, rec in _jsonl_records(path):
        if not isinstance(rec.get("text"), str) or "lang" not in rec:
            raise CalibrationError(f"{path}:{lineno}: expected {{'lang': .., 'text': ..}}.")
        parts.setdefault(check_language_tag(rec["lang"]), []).append(rec["text"])
    if not parts:
        raise CalibrationError(f"calibration file {path} holds no records; add {{'lang', 'text'}} lines.")
    return {lang: "\n\n".join(chunks) for lang, chunks in parts.items()}


def read_tokens_jsonl(path: str | Path) -> CalibrationSet:
    """Pre-tokenized calibration: ``{"lang": "de", "input_ids": [..]}`` per line, equal lengths."""
    rows, langs = [], []
    for lineno, rec in _jsonl_records(path):
        ids = rec.get("input_ids")
        if not isinstance(ids, list) or not ids or not all(isinstance(t, int) for t in ids):
            raise CalibrationError(f"{path}:{lineno}: 'input_ids' must be a non-empty int list.")
        if rows and len(ids) != len(rows[0]):
            raise CalibrationError(
                f"{path}:{lineno}: sequence has {len(ids)} tokens but the first has "
                f"{len(rows[0])}; all calibration sequences must have the same length."
            )
        try:
            langs.append(check_language_tag(rec.get("lang")))
        except CalibrationError as err:
            raise CalibrationError(f"{path}:{lineno}: {err}") from None
        rows.append(ids)
    if not rows:
        raise CalibrationError(
            f"calibration file {path} holds no records; add {{'lang', 'input_ids'}} lines."
        )
    return CalibrationSet(torch.tensor(rows, dtype=torch.long), tuple(langs))


def write_tokens_jsonl(calib: CalibrationSet, path: str | Path) -> None:
    """Save ``calib`` so that it can be passed back with ``--calib-tokens`` (atomic write)."""
    lines = [
        json.dumps({"lang": lang, "input_ids": row}) + "\n"
        for lang, row in zip(calib.langs, calib.input_ids.tolist(), strict=True)
    ]
    atomic_write_text(path, "".join(lines))


def _jsonl_records(path: str | Path):
    path = Path(path)
    if not path.is_file():
        raise CalibrationError(f"calibration file {path} does not exist; check the path.")
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise CalibrationError(
                    f"{path}:{lineno}: not UTF-8 (byte {raw[err.start]:#04x} at column {err.start + 1}); "
                    "save the file as UTF-8."
                ) from None
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as err:
                raise CalibrationError(f"{path}:{lineno}: not valid JSON ({err.msg}).") from None
            if not isinstance(rec, dict):
                raise CalibrationError(f"{path}:{lineno}: each line must be a JSON object.")
            yield lineno, rec
