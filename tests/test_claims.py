"""docs/results.md's table of every comparison, generated from the notebooks' comparisons.csv."""

import pandas as pd
import pytest

from mwanda import REPO_ROOT
from mwanda.study import claims, plotting


def _compared(**extra) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "sparsity": 0.5,
                "base": "wanda",
                "other": "mwanda",
                "base_mean": 0.015,
                "other_mean": 0.014,
                "difference": -0.001,
                "languages_better": 11,
                "languages": 20,
                "seed_min": -0.0011,
                "seed_max": -0.0009,
                "seeds": 3,
                "low": -0.0015,
                "high": -0.0004,
                "paragraphs": 122,
                "verdict": "holds",
            }
            | extra
        ]
    )


def test_rows_name_the_split_setting_and_methods():
    out = claims.rows(_compared(), "test split", "calibrated on en only", names=plotting.label_name)
    assert list(out.columns) == list(claims.COLUMNS)
    r = out.iloc[0]
    assert (r["split"], r["setting"], r["other"], r["base"]) == (
        "test",
        "calibrated on en only, 50%",
        "M-Wanda",
        "Wanda",
    )
    nm = claims.rows(_compared(structure="2:4"), "dev")
    assert nm.iloc[0]["setting"] == "2:4 at 50%"


def test_markdown_prints_effect_interval_count_and_verdict(tmp_path):
    (tmp_path / "04_x").mkdir()
    claims.rows(_compared(), "test").to_csv(tmp_path / "04_x" / claims.FILE, index=False)
    table = claims.collect(tmp_path)
    text = claims.markdown(table)
    row = (
        "| 04 | test | 50% | mwanda vs wanda | "
        "+1.40% vs +1.50% | -0.10 | -0.15 to -0.04 | 11/20 | 3 | holds |"
    )
    assert row in text
    assert text.endswith("1 comparisons: 1 holds, 0 within noise, 0 reversed.\n")
    nan = claims.markdown(table.assign(low=float("nan"), high=float("nan")))
    assert "| -0.10 | – | 11/20 |" in nan


def test_update_replaces_only_the_block_and_refuses_a_readme_without_markers(tmp_path):
    text = f"intro\n{claims.START}\nold\n{claims.END}\noutro\n"
    assert claims.update_text(text, "NEW") == "intro\nNEW\noutro\n"
    with pytest.raises(ValueError, match="no claims block"):
        claims.update_text("no markers", "NEW")
    with pytest.raises(FileNotFoundError, match="make figures"):
        claims.collect(tmp_path)


def test_main_updates_through_a_rename_and_keeps_the_mode(tmp_path):
    (tmp_path / "figs" / "01_x").mkdir(parents=True)
    claims.rows(_compared(), "test").to_csv(tmp_path / "figs" / "01_x" / claims.FILE, index=False)
    readme = tmp_path / "README.md"
    readme.write_text(f"a\n{claims.START}\n{claims.END}\nb\n")
    readme.chmod(0o640)
    args = [str(readme), "--figures", str(tmp_path / "figs")]
    assert claims.main(args) == 1  # differs, not updated
    assert claims.main([*args, "--update"]) == 0
    assert "| 01 | test | 50% |" in readme.read_text() and readme.stat().st_mode & 0o777 == 0o640
    assert claims.main(args) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md", "figs"]


def test_the_readme_holds_the_committed_comparisons():
    """docs/results.md's full table is what figures/*/comparisons.csv say: regenerate it with
    `python -m mwanda.study.claims docs/results.md --update` after `make figures`."""
    readme = (REPO_ROOT / "docs" / "results.md").read_text(encoding="utf-8")
    assert claims.block() in readme


def test_at_most_five_primary_claims_each_with_its_comparison_and_direction():
    import yaml

    claims = yaml.safe_load((REPO_ROOT / "data" / "primary_claims.yaml").read_text(encoding="utf-8"))[
        "claims"
    ]
    assert 1 <= len(claims) <= 5 and len({c["id"] for c in claims}) == len(claims)
    for c in claims:
        assert {"statement", "notebook", "base", "other", "sparsity", "direction"} <= set(c), c["id"]
        assert c["direction"].split()[1] in ("<", ">") and 0 < c["sparsity"] < 1
