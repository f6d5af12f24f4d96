"""Figures: one palette and order (plotting), numbers saved beside every figure, and figcheck's
comparison of regenerated figures with committed ones by those numbers."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from mwanda.study import figcheck, plotting  # noqa: E402


def test_methods_come_in_one_order_and_allocations_in_distinct_shades():
    labels = ["mwanda+cwl", "English only", "wanda", "mwanda", "sparsegpt", "mwanda+owl", "magnitude", "x"]
    assert plotting.label_order(labels) == [
        "magnitude",
        "wanda",
        "mwanda",
        "mwanda+owl",
        "mwanda+cwl",
        "sparsegpt",
        "English only",
        "x",
    ]
    shades = {plotting.label_color(lab) for lab in ("mwanda", "mwanda+owl", "mwanda+cwl")}
    assert len(shades) == 3 and plotting.label_color("mwanda") == plotting.METHOD_COLORS["mwanda"]
    assert plotting.split_label("mwanda+sparsegpt+cwl") == ("mwanda+sparsegpt", "cwl")
    assert plotting.label_name("mwanda+sparsegpt+cwl") == "SparseGPT, language-aware + CWL"
    groups = plotting.palette(["English only", "multilingual", "wanda"])
    assert len(set(groups.values())) == 3 and groups["wanda"] == plotting.METHOD_COLORS["wanda"]


def test_languages_are_named_and_held_out_ones_marked():
    assert plotting.language_name("ko") == "Korean"
    assert plotting.language_name("sw").startswith("Swahili")  # not in the table: ISO 639
    assert plotting.language_name("qqq") == "qqq"
    key = plotting.language_key(["en", "ko"], {"en": "calibration", "ko": plotting.HELD_OUT})
    assert key.startswith("en English · ko Korean") and "held out" in key


def _bars(tmp_path, langs=24):
    codes = [f"l{i:02d}" for i in range(langs)]
    df = pd.DataFrame(
        [
            {"language": c, "label": lab, "seed": s, "rel_increase": 0.01 * i + 0.001 * s}
            for i, c in enumerate(codes)
            for lab in ("mwanda", "wanda")
            for s in (0, 1)
        ]
    )
    return codes, df


def test_bars_per_language_facets_wide_charts_in_method_order(tmp_path):
    codes, df = _bars(tmp_path)
    fig = plotting.bars_per_language(df, order=codes, roles={codes[-1]: plotting.HELD_OUT}, per_row=10)
    assert len(fig.axes) == 3  # 24 languages in rows of 10
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == ["Wanda", "M-Wanda"]
    last = fig.axes[2].get_xticklabels()[-1]
    assert last.get_text() == codes[-1] and last.get_style() == "italic"
    plt.close(fig)


def test_heatmap_puts_rows_in_the_given_order_with_horizontal_labels():
    frame = pd.DataFrame({"b0": [1.0, 2.0, 3.0], "b1": [4.0, 5.0, 6.0]}, index=["zh", "en", "xx"])
    fig, ax = plt.subplots()
    drawn = plotting.heatmap(frame, ax, order=["en", "de", "zh"], cbar=False)
    assert list(drawn.index) == ["en", "zh", "xx"]  # unnamed rows follow; absent names are ignored
    assert [t.get_text() for t in ax.get_yticklabels()] == ["en", "zh", "xx"]
    assert {t.get_rotation() for t in ax.get_yticklabels()} == {0.0}
    assert drawn.loc["zh", "b1"] == 4.0  # rows move with their values
    plt.close(fig)


def test_savefig_writes_the_numbers_beside_the_figure_and_requires_them(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0.5, 0.25])
    with pytest.raises(ValueError, match="data="):
        plotting.savefig(fig, "f", "nb", tmp_path, data=pd.DataFrame())
    plotting.savefig(fig, "f", "nb", tmp_path, data=pd.DataFrame({"x": [0, 1], "y": [0.5, 1 / 3]}))
    assert sorted(p.name for p in (tmp_path / "nb").iterdir()) == ["f.csv", "f.pdf", "f.png"]
    assert (tmp_path / "nb" / "f.csv").read_text() == "x,y\n0,0.5\n1,0.3333333333\n"
    plt.close(fig)


def test_compare_tables_uses_the_stated_tolerance():
    old = pd.DataFrame({"language": ["en", "de"], "v": [1.0, 0.01]})
    assert figcheck.compare_tables(old.assign(v=[1.0 + 9e-7, 0.01 + 9e-7]), old) is None
    assert "row 1" in figcheck.compare_tables(old.assign(v=[1.0, 0.01 + 3e-6]), old)
    assert "'en'" in figcheck.compare_tables(old.assign(language=["fr", "de"]), old)
    assert "rows" in figcheck.compare_tables(old.iloc[:1], old)
    assert "columns" in figcheck.compare_tables(old.rename(columns={"v": "w"}), old)
    nan = pd.DataFrame({"v": [float("nan")]})
    assert figcheck.compare_tables(nan, nan) is None


def test_remeasured_wall_times_agree_within_a_factor_and_read_back_ones_by_pixel(tmp_path):
    old = pd.DataFrame({"languages": [2, 240], "prune_s": [3.0, 3.2], "statistics_mib": [0.03, 4.1]})
    assert figcheck.compare_tables(old.assign(prune_s=[4.5, 2.0]), old) is None  # x1.5, /1.6
    assert "prune_s" in figcheck.compare_tables(old.assign(prune_s=[3.0, 7.0]), old)  # x2.2
    tiny = pd.DataFrame({"cwl_s_all_blocks": [0.009]})
    assert figcheck.compare_tables(tiny.assign(cwl_s_all_blocks=[0.034]), tiny) is None  # x3.8, but 25 ms
    assert "statistics_mib" in figcheck.compare_tables(old.assign(statistics_mib=[0.03, 4.2]), old)
    assert figcheck.is_time("cwl_s_all_blocks") and not figcheck.is_time("seconds_per_record")
    new_dir, old_dir = tmp_path / "new", tmp_path / "old"
    for folder, times in ((old_dir, [3.0, 3.2]), (new_dir, [4.0, 2.5])):
        fig, ax = plt.subplots(figsize=(3, 2))
        ax.plot(old["languages"], times)
        plotting.savefig(fig, "cost", "nb", folder, data=old.assign(prune_s=times))
        plt.close(fig)
    (check,) = figcheck.check_figures(new_dir / "nb", old_dir / "nb")
    assert check.verdict == "same" and "['prune_s'] within a factor 2" in check.detail
    # the same times read back (shipped measurements) and drawn anew: the drawing is compared
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot(old["languages"], [3.0, 3.2], ls="--", marker="o", color="C3")
    plotting.savefig(fig, "cost", "nb", new_dir, data=old)
    plt.close(fig)
    (check,) = figcheck.check_figures(new_dir / "nb", old_dir / "nb")
    assert check.verdict == "redrawn"


def _figure(folder, name, values, color="C0"):
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.bar(range(len(values)), values, color=color)
    plotting.savefig(fig, name, "nb", folder, data=pd.DataFrame({"v": values}))
    plt.close(fig)


def test_figcheck_keeps_committed_files_when_only_float_noise_changed(tmp_path, capsys):
    new, old = tmp_path / "build", tmp_path / "figures"
    for folder, noise in ((old, 0.0), (new, 1e-8)):
        _figure(folder, "same", [1.0 + noise, 2.0])
        _figure(folder, "moved", [1.0, 2.0 + 100 * noise * 1e3])  # 1e-3: a real change
        _figure(folder, "recoloured", [1.0, 2.0], color="C0" if folder == old else "C3")
    _figure(new, "fresh", [3.0])
    _figure(old, "retired", [4.0])
    committed = {p.name: p.read_bytes() for p in (old / "nb").iterdir()}
    assert figcheck.main([str(new / "nb"), str(old / "nb"), "--update"]) == 0
    out = capsys.readouterr().out
    assert "1 of 5 figures the same within 1e-06" in out
    verdicts = {c.name: c.verdict for c in figcheck.check_figures(new / "nb", old / "nb")}
    assert verdicts == dict.fromkeys(["same", "moved", "recoloured", "fresh"], "same") | {"retired": "gone"}
    now = {p.name: p.read_bytes() for p in (old / "nb").iterdir() if not p.name.startswith(".")}
    assert now["same.csv"] == committed["same.csv"] and now["same.png"] == committed["same.png"]
    assert now["moved.csv"] != committed["moved.csv"] and now["recoloured.png"] != committed["recoloured.png"]
    assert "fresh.png" in now and now["retired.png"] == committed["retired.png"]  # reported, never deleted
    assert "moved: differs" in out and "recoloured: redrawn" in out and "retired: gone" in out


def test_figcheck_refuses_figures_without_numbers_and_its_own_output(tmp_path):
    new = tmp_path / "build" / "nb"
    new.mkdir(parents=True)
    (new / "f.png").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="no .csv"):
        figcheck.check_figures(new, tmp_path / "figures" / "nb")
    with pytest.raises(SystemExit):
        figcheck.main([str(new), str(new)])
