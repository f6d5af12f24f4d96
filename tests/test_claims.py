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
                "h_low": -0.0021,
                "h_high": 0.0002,
                "p_value": 0.08,
                "pages": 26,
                "verdict": "within noise",
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
        "| 04 | exploratory | test | 50% | mwanda vs wanda | "
        "+1.40% vs +1.50% | -0.10 | -0.15 to -0.04 | -0.21 to +0.02 | 11/20 | 3 | 0.080 | within noise |"
    )
    assert row in text
    assert text.endswith("1 comparisons. tiny model, exploratory: 1 (0 holds, 1 within noise, 0 reversed).\n")
    nan = table.assign(low=float("nan"), high=float("nan"), h_low=float("nan"), p_value=float("nan"))
    assert "| -0.10 | – | – | 11/20 | 3 | – | within noise |" in claims.markdown(nan)


def test_judge_holm_adjusts_each_family_and_counts_a_repeated_row_once():
    one = claims.rows(_compared(), "test").assign(notebook="04")
    rows = pd.concat(
        [
            one.assign(p_value=0.02),  # primary P2 on the tiny model
            one.assign(p_value=0.02),  # the same row printed again: counted once
            one.assign(setting="60%", p_value=0.03, difference=-0.004),  # primary P3
            one.assign(setting="70%", p_value=0.01, difference=-0.01),  # exploratory alone
            one.assign(notebook="09", p_value=0.03, difference=0.002),  # Gemma's P2: reversed
        ],
        ignore_index=True,
    )
    sel = [
        ("P2", {"split": "test", "setting": "50%", "other": "mwanda", "base": "wanda"}),
        ("P3", {"setting": "60%"}),
    ]
    out = claims.judge(rows, sel)
    assert list(out["claim"]) == ["P2", "P3", "exploratory", "P2"]
    assert list(out["model"]) == ["tiny model"] * 3 + ["Gemma 3 270M"]
    assert out["p_holm"].tolist() == pytest.approx([0.04, 0.04, 0.01, 0.03])  # two primaries: x2, x1
    assert list(out["verdict"]) == ["holds", "holds", "holds", "reversed"]
    loose = claims.judge(rows.assign(p_value=[0.06, 0.06, 0.01, 0.01, 0.03]), sel)
    assert list(loose["verdict"])[:2] == ["within noise", "holds"]  # 0.06 and 0.02 after Holm


def test_every_primary_claim_row_selector_names_a_committed_row():
    """Of each notebook whose comparisons are committed: a selector that matches nothing (a renamed
    setting, a label changed) would silently make a primary claim exploratory."""
    table = claims.judge(claims.collect())
    rendered = set(table["notebook"].astype(str))
    for cid, sel in claims.primary_selectors():
        if sel["notebook"] in rendered:
            hit = table[table["claim"] == cid]
            assert (hit["notebook"].astype(str) == sel["notebook"]).sum() == 1, (cid, sel)


def test_update_replaces_only_the_block_and_refuses_a_readme_without_markers(tmp_path):
    text = f"intro\n{claims.START}\nold\n{claims.END}\noutro\n"
    assert claims.update_text(text, "NEW") == "intro\nNEW\noutro\n"
    with pytest.raises(ValueError, match="no generated block"):
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
    assert "| 01 | exploratory | test | 50% |" in readme.read_text()
    assert readme.stat().st_mode & 0o777 == 0o640
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


def test_a_notebook_of_several_models_names_each_rows_model_and_claim():
    """Notebook 10's rows carry their model and primary claim: each model is its own Holm family."""
    seed1 = [
        claims.rows(_compared(p_value=p, difference=-0.001), "test", f"training seed 1, {cid}").assign(
            model="tiny model, training seed 1", claim=cid
        )
        for cid, p in (("P2", 0.02), ("P3", 0.03))
    ]
    other = claims.rows(_compared(p_value=0.02), "test")
    table = pd.concat(
        [*(t.assign(notebook="10") for t in seed1), other.assign(notebook="04")], ignore_index=True
    )
    judged = claims.judge(table, selectors=[])
    assert list(judged["model"]) == ["tiny model, training seed 1"] * 2 + ["tiny model"]
    assert list(judged["claim"]) == ["P2", "P3", "exploratory"]
    # Holm over the replicate's two rows (0.02 x 2, then max(0.04, 0.03)); the 04 row is a family alone
    assert judged["p_holm"].tolist() == pytest.approx([0.04, 0.04, 0.02])
    assert judged["verdict"].tolist() == ["holds"] * 3
    text = claims.markdown(table.assign(p_value=[0.02, 0.6, 0.02]))
    assert "tiny model, training seed 1, primary: 2 (1 holds, 1 within noise, 0 reversed)" in text


def _judged_row(notebook, setting, verdict, low, high, **extra) -> dict:
    return {
        "notebook": notebook,
        "split": "test",
        "setting": setting,
        "other": "M-Wanda",
        "base": "Wanda",
        "difference": (low + high) / 2,
        "low": low,
        "high": high,
        "h_low": low * 2,
        "h_high": high * 2,
        "verdict": verdict,
    } | extra


def test_changes_say_whether_the_statistics_or_the_numbers_moved_a_verdict():
    from mwanda.study import changes

    before = pd.DataFrame(
        [
            _judged_row(1, "kept", "holds", -0.3, -0.1),
            _judged_row(1, "statistics", "holds", -0.3, -0.1),
            _judged_row(1, "numbers", "holds", -0.3, -0.1),
            _judged_row(4, "gone", "reversed", 0.1, 0.2),
        ]
    )[changes.SNAPSHOT_COLUMNS[:5] + ["difference", "low", "high", "verdict"]]
    now = pd.DataFrame(
        [
            _judged_row("01", "kept", "holds", -0.3, -0.1),
            _judged_row("01", "statistics", "within noise", -0.3, -0.1),  # paired still below 0
            _judged_row("01", "numbers", "within noise", -0.2, 0.1),  # paired crosses 0 now
            _judged_row("04", "new", "holds", -0.2, -0.1),
            _judged_row("09", "another model", "holds", -0.2, -0.1),  # a notebook added since
        ]
    )
    out = changes.compare(before, now).set_index("setting")["change"].to_dict()
    assert out == {
        "kept": "same",
        "statistics": "statistics",
        "numbers": "numbers",
        "gone": "gone",
        "new": "new",
    }
    table = changes.markdown(changes.compare(before, now))
    assert "| 01 | test | numbers | M-Wanda vs Wanda | -20.00 [-30.00, -10.00] | holds |" in table
    assert "| kept |" not in table and "| new |" not in table
    assert table.endswith("5 rows: 1 same, 1 statistics, 1 numbers, 1 new, 1 gone.\n")


def test_the_results_page_holds_the_changes_against_the_kept_table():
    from mwanda.study import changes

    before = pd.read_csv(changes.BEFORE)
    assert not before.duplicated(changes.KEY).any() and set(before["verdict"]) <= {
        "holds",
        "within noise",
        "reversed",
    }
    assert changes.block() in (REPO_ROOT / "docs" / "results.md").read_text(encoding="utf-8")
