"""The README's results table: every number generated from the committed CSVs (study/prose.py)."""

from __future__ import annotations

import pandas as pd
import pytest
from test_claims import _compared

from mwanda import REPO_ROOT
from mwanda.study import claims, prose


@pytest.fixture
def figures(tmp_path):
    """A figures folder: notebook 04's comparisons (M-Wanda vs Wanda at 50% and 60%) and a CSV."""
    (tmp_path / "04_x").mkdir()
    rows = pd.concat(
        [
            claims.rows(_compared(p_value=0.001), "test"),
            claims.rows(_compared(sparsity=0.6, difference=-0.004, p_value=0.5), "test"),
        ]
    )
    rows.to_csv(tmp_path / "04_x" / claims.FILE, index=False)
    pd.DataFrame(
        {"language": ["en", "de", "en"], "sparsity": [0.6, 0.6, 0.5], "v": [0.02, 0.04, 0.01]}
    ).to_csv(tmp_path / "04_x" / "curve.csv", index=False)
    return tmp_path


def test_a_comparison_placeholder_prints_the_row_and_its_fields(figures):
    full = prose.render("{{04 | test | 50% | mwanda vs wanda}}", figures)
    assert full == "+1.40% vs +1.50%, −0.10 [−0.21, +0.02], 11/20, p 0.002 (Holm): holds"  # 2 rows: x2
    assert (
        prose.render("x {{04 \\| test \\| 60% \\| mwanda vs wanda \\| verdict}} y", figures)
        == "x within noise y"
    )
    assert prose.render("{{04 | test | 60% | mwanda vs wanda | difference}}", figures) == "−0.40"


def test_a_value_placeholder_aggregates_the_matching_rows(figures):
    assert prose.render("{{csv 04 curve.csv | sparsity=0.6 | mean v | +.1%}}", figures) == "+3.0%"
    assert (
        prose.render("{{csv 04 curve.csv | language!=de; sparsity=0.60 | max v | .3f}}", figures) == "0.020"
    )


def test_an_unrendered_notebook_is_pending_and_a_bad_placeholder_an_error(figures):
    assert (
        prose.render("{{09 | test | 50% | mwanda vs wanda}}", figures)
        == "pending (notebook 09 not rendered yet)"
    )
    with pytest.raises(prose.TemplateError, match="matches 0 rows"):
        prose.render("{{04 | test | 70% | mwanda vs wanda}}", figures)
    with pytest.raises(prose.TemplateError, match="no field 'nope'"):
        prose.render("{{04 | test | 50% | mwanda vs wanda | nope}}", figures)
    with pytest.raises(prose.TemplateError, match="matches no row"):
        prose.render("{{csv 04 curve.csv | language=fr | mean v | .2f}}", figures)


def test_the_template_types_no_number_and_the_readme_holds_its_rendering():
    """Regenerate with `python -m mwanda.study.prose README.md --update` after `make figures`."""
    template = prose.TEMPLATE.read_text(encoding="utf-8")
    assert prose.typed_numbers(template) == []
    assert prose.typed_numbers("Wanda +3.5% in 12/20 languages, Llama-3.1-8B") == ["3.5", "12/20"]
    assert prose.block() in (REPO_ROOT / "README.md").read_text(encoding="utf-8")
