"""Paragraphs out of HTML: the LibreOffice help pages (by paragraph id) and the UDHR (by
article), normalized as the corpus stores them. Pure functions of the markup."""

from __future__ import annotations

import html.parser
import re
import unicodedata

from mwanda.data import normalize

_PARA_ID = re.compile(r"^(par|hd)_")


_SKIP_TAGS = {"script", "style", "noscript"}


def has_letters(text: str) -> bool:
    """True if the text contains at least one letter (drops pure numbers / symbols)."""
    return any(unicodedata.category(ch).startswith("L") for ch in text)


class HelpParagraphParser(html.parser.HTMLParser):
    """Collect the text of elements whose ``id`` is a help paragraph id (par_*, hd_*).

    Nested id'd elements are emitted separately (innermost wins) so that a table
    cell with its own id is not glued into its parent.
    """

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.paragraphs: dict[str, str] = {}
        self._stack: list[tuple[str, str, list[str], int]] = []  # (tag, id, parts, depth)
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self._skip += 1
            return
        if tag == "br" and self._stack:
            self._stack[-1][2].append(" ")
            return
        pid = dict(attrs).get("id") or ""
        if _PARA_ID.match(pid):
            self._stack.append((tag, pid, [], 1))
        elif self._stack and self._stack[-1][0] == tag:
            top = self._stack[-1]
            self._stack[-1] = (top[0], top[1], top[2], top[3] + 1)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self._skip = max(0, self._skip - 1)
            return
        if not self._stack or self._stack[-1][0] != tag:
            return
        name, pid, parts, depth = self._stack.pop()
        if depth > 1:
            self._stack.append((name, pid, parts, depth - 1))
            return
        text = normalize("".join(parts))
        if text and pid not in self.paragraphs:
            self.paragraphs[pid] = text

    def handle_data(self, data: str) -> None:
        if self._stack and not self._skip:
            self._stack[-1][2].append(data)


def parse_help_html(markup: str) -> dict[str, str]:
    """Paragraph id -> normalized text of one LibreOffice help page."""
    parser = HelpParagraphParser()
    parser.feed(markup)
    parser.close()
    return parser.paragraphs


class UdhrParser(html.parser.HTMLParser):
    """Split one UDHR declaration page into title, preamble and articles."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: dict[str, list[str]] = {}
        self._section: str | None = None
        self._in_h1 = False
        self._in_h2 = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "h1":
            self._in_h1 = True
        elif tag == "h2":
            self._in_h2 = True
        elif tag == "header":
            self._section = "preamble"
        elif tag == "article":
            number = dict(attrs).get("data-number") or "0"
            self._section = f"art{int(number):02d}"
        elif tag in {"p", "li", "br"}:
            self._add(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag == "h1":
            self._in_h1 = False
        elif tag == "h2":
            self._in_h2 = False
        elif tag in {"header", "article"}:
            self._section = None

    def handle_data(self, data: str) -> None:
        if self._in_h1:
            self.blocks.setdefault("title", []).append(data)
        elif not self._in_h2:
            self._add(data)

    def _add(self, data: str) -> None:
        if self._section is not None:
            self.blocks.setdefault(self._section, []).append(data)


def parse_udhr_html(markup: str) -> dict[str, str]:
    """UDHR section id (title, preamble, art01..art30) -> normalized text."""
    parser = UdhrParser()
    parser.feed(markup)
    parser.close()
    out = {key: normalize("".join(parts)) for key, parts in parser.blocks.items()}
    return {key: out[key] for key in sorted(out) if out[key]}
