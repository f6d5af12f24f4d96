"""The README's results table, its numbers generated from the committed figures' CSVs.

The table is written once as a template (``docs/claims_template.md``): words by hand, every number
a placeholder that names where it comes from, so prose and data cannot drift:

    {{04 | test | 60% | M-Wanda vs Wanda}}
        -> +3.50% vs +3.89%, -0.39 [-0.77, -0.02], 12/20, p 0.118 (Holm): within noise
    {{04 | test | 60% | M-Wanda vs Wanda | effect}}  -> -0.39 [-0.77, -0.02]
    {{csv 01 wanda_relative_increase.csv | language=en; sparsity=0.6 | mean rel_increase | +.1%}}
    {{changes}}  -> how many verdicts the statistics rerun changed, and why (study/changes.py)

Inside a markdown table the bars are escaped (``\\|``). A comparison is a row of
``docs/results.md``'s table (``claims.judge``: hierarchical interval,
Holm-adjusted verdict); its fields: ``means``, ``effect``, ``lower``, ``verdict``, ``other_mean``,
``base_mean``, ``difference``. A value is an aggregate (mean, min, max, first) of one column of a
figure's CSV over the rows that match ``column=value`` (or ``column!=value``) conditions. A
placeholder of a notebook not yet rendered says so; one that matches no row, or
several, is an error naming it. ``python -m mwanda.study.prose README.md --update`` writes the
rendered template between the README's markers; a test checks that it is up to date and that
the template holds no number outside placeholders.
"""

from __future__ import annotations

import argparse
import re
import sys
from functools import cache
from pathlib import Path

import pandas as pd

from mwanda import REPO_ROOT
from mwanda.study import changes, claims

TEMPLATE = REPO_ROOT / "docs" / "claims_template.md"
START = (
    "<!-- prose:start (docs/claims_template.md rendered: python -m mwanda.study.prose README.md --update) -->"
)
END = "<!-- prose:end -->"
PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", flags=re.S)
PENDING = "pending (notebook {nb} not rendered yet)"
# A number in the template's own words: a decimal or a count out of a total (not a version inside a
# name, as in Llama-3.1-8B).
TYPED_NUMBER = re.compile(r"(?<![\w.-])(?:\d+\.\d+|\d+/\d+)(?![\w.])")


class TemplateError(ValueError):
    """A placeholder that names no row, several rows, or a field that does not exist."""


def pts(v: float) -> str:
    return f"{v * 100:+.2f}".replace("-", "−")


def pct(v: float, digits: int = 2) -> str:
    return f"{v:+.{digits}%}".replace("-", "−")


@cache
def _judged(figures: Path) -> pd.DataFrame:
    table = claims.judge(claims.collect(figures))
    return table.assign(notebook=table["notebook"].astype(str))


def comparison(spec: list[str], figures: Path) -> str:
    """A comparison placeholder: notebook | split | setting | other vs base [| field]."""
    if len(spec) not in (4, 5):
        raise TemplateError(f"{' | '.join(spec)}: want notebook | split | setting | other vs base [| field]")
    nb, split, setting, pair = spec[:4]
    field = spec[4] if len(spec) == 5 else "full"
    if not any(figures.glob(f"{nb}_*/{claims.FILE}")):
        return PENDING.format(nb=nb)
    other, base = (s.strip() for s in pair.split(" vs ", 1))
    t = _judged(figures)
    hit = t[(t["notebook"] == nb) & (t["split"] == split) & (t["setting"] == setting)]
    hit = hit[(hit["other"] == other) & (hit["base"] == base)]
    if len(hit) != 1:
        raise TemplateError(f"{' | '.join(spec)} matches {len(hit)} rows of the comparisons; want one")
    r = hit.iloc[0]
    parts = {
        "means": f"{pct(r['other_mean'])} vs {pct(r['base_mean'])}",
        "effect": f"{pts(r['difference'])} [{pts(r['h_low'])}, {pts(r['h_high'])}]",
        "lower": f"{int(r['languages_better'])}/{int(r['languages'])}",
        "verdict": r["verdict"],
        "other_mean": pct(r["other_mean"]),
        "base_mean": pct(r["base_mean"]),
        "difference": pts(r["difference"]),
    }
    holm = "" if pd.isna(r["p_holm"]) else f", p {r['p_holm']:.3f} (Holm)"
    parts["full"] = f"{parts['means']}, {parts['effect']}, {parts['lower']}{holm}: {parts['verdict']}"
    if field not in parts:
        raise TemplateError(f"{' | '.join(spec)}: no field {field!r}; use one of {sorted(parts)}")
    return parts[field]


def value(spec: list[str], figures: Path) -> str:
    """A value placeholder: csv NB FILE | conditions | agg column | format."""
    if len(spec) != 4:
        raise TemplateError(f"{' | '.join(spec)}: want csv NB FILE | conditions | agg column | format")
    _, nb, name = spec[0].split()
    folders = sorted(figures.glob(f"{nb}_*"))
    if not folders:
        return PENDING.format(nb=nb)
    frame = pd.read_csv(folders[0] / name)
    for cond in filter(None, (c.strip() for c in spec[1].split(";"))):
        col, negate, want = re.fullmatch(r"(.+?)\s*(!?)=\s*(.+)", cond).groups()
        match = frame[col].astype(str) == want
        number = pd.to_numeric(pd.Series([want]), errors="coerce").iloc[0]
        if not match.any() and not pd.isna(number):  # a number: 0.6 also matches 0.60
            match = pd.to_numeric(frame[col], errors="coerce") == number
        frame = frame[~match if negate else match]
    agg, column = spec[2].split()
    if frame.empty:
        raise TemplateError(f"{' | '.join(spec)} matches no row of {name}")
    number = getattr(frame[column], agg)() if agg != "first" else frame[column].iloc[0]
    return format(number, spec[3]).replace("-", "−")


def render(template: str, figures: Path = REPO_ROOT / "figures") -> str:
    """The template with every placeholder replaced."""

    def one(m: re.Match) -> str:
        spec = [s.strip().rstrip("\\").strip() for s in m.group(1).split("|")]  # "\|" inside a table
        if spec == ["changes"]:
            return changes.summary(figures)
        return value(spec, figures) if spec[0].startswith("csv ") else comparison(spec, figures)

    _judged.cache_clear()  # the CSVs may have changed since the last render
    return PLACEHOLDER.sub(one, template)


def typed_numbers(template: str) -> list[str]:
    """Numbers written into the template's words (outside placeholders): should be none."""
    return TYPED_NUMBER.findall(PLACEHOLDER.sub("", template))


def block(figures: Path = REPO_ROOT / "figures", template: Path = TEMPLATE) -> str:
    return f"{START}\n{render(template.read_text(encoding='utf-8'), figures)}{END}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("readme", type=Path, help="the page that holds the generated block: README.md")
    parser.add_argument("--update", action="store_true", help="write the block into the page")
    args = parser.parse_args(argv)
    try:
        return claims.sync_block(args.readme, block(), "results table", args.update, START, END)
    except ValueError as err:  # no markers in the page
        print(f"{args.readme}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
