"""The paired bootstrap over evaluation paragraphs and calibration seeds (study.uncertainty), and
``results.compare``'s interval and verdict built on it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mwanda.study import results, uncertainty

S, L, P = 3, 4, 30


def nlls(seed: int, scale=1.0, noise=0.05) -> np.ndarray:
    """Paragraph NLLs [S, L, P]: paragraphs of unequal length, per-seed and per-paragraph noise."""
    rng = np.random.default_rng(seed)
    length = rng.uniform(50, 150, size=P)
    return scale * length * (1 + noise * rng.standard_normal((S, L, P)))


DENSE = np.random.default_rng(99).uniform(40, 120, size=(L, P))


def test_effect_is_the_printed_statistic():
    base, other = nlls(1, 1.2), nlls(2, 1.1)
    iv = uncertainty.paired_bootstrap(base, other, DENSE, n_boot=200)
    inc = lambda x: (
        np.mean([[x[s, lang].sum() / DENSE[lang].sum() for lang in range(L)] for s in range(S)]) - 1
    )  # noqa: E731
    assert iv.effect == pytest.approx(inc(other) - inc(base), rel=1e-12)
    assert iv.low <= iv.effect <= iv.high and (iv.paragraphs, iv.seeds) == (P, S)


def test_verdicts():
    base = nlls(1, 1.2)
    assert uncertainty.paired_bootstrap(base, base * 0.9, DENSE).verdict == "holds"
    assert uncertainty.paired_bootstrap(base, base * 1.1, DENSE).verdict == "reversed"
    same = uncertainty.paired_bootstrap(base, base.copy(), DENSE)
    assert (same.effect, same.low, same.high, same.verdict) == (0.0, 0.0, 0.0, "within noise")


def test_same_data_same_interval_and_more_text_narrows_it():
    base, other = nlls(1, 1.2), nlls(2, 1.2)
    a, b = (uncertainty.paired_bootstrap(base, other, DENSE) for _ in range(2))
    assert a == b
    half = uncertainty.paired_bootstrap(base[:, :, : P // 2], other[:, :, : P // 2], DENSE[:, : P // 2])
    assert a.high - a.low < half.high - half.low


def test_interval_covers_a_null_effect_about_95_percent_of_the_time():
    """Both methods drawn from the same distribution: the interval should contain 0 about as
    often as its level says (a percentile bootstrap with P = 30 is a little narrow: >= 85%)."""
    covered = sum(
        uncertainty.paired_bootstrap(nlls(2 * k), nlls(2 * k + 1), DENSE, n_boot=400).verdict
        == "within noise"
        for k in range(60)
    )
    assert covered >= 51


def test_one_seed_side_pairs_with_every_seed_and_bad_shapes_are_refused():
    base, other = nlls(1, 1.2), nlls(2, 1.1)
    one = uncertainty.paired_bootstrap(base[:1], other, DENSE, n_boot=100)
    assert one.seeds == S
    assert one.effect == pytest.approx(
        uncertainty.increase(other, DENSE) - uncertainty.increase(base[:1], DENSE), rel=1e-12
    )
    for bad in (base[:2], base[:, :2], base[:, :, :5]):
        with pytest.raises(ValueError, match="do not pair"):
            uncertainty.paired_bootstrap(bad, other, DENSE)


def _frame(labels: dict[str, np.ndarray]) -> pd.DataFrame:
    """A with_dense-like frame from paragraph NLLs per label (relative increases derived)."""
    rows = []
    for label, x in labels.items():
        for s in range(x.shape[0]):
            for lang in range(L):
                rows.append(
                    {
                        "label": label,
                        "seed": s,
                        "language": f"l{lang}",
                        "metric": "bpb",
                        "sparsity": 0.5,
                        "rel_increase": x[s, lang].sum() / DENSE[lang].sum() - 1,
                        "paragraph_nll": tuple(x[s, lang]),
                        "dense_paragraph_nll": tuple(DENSE[lang]),
                    }
                )
    return pd.DataFrame(rows)


def test_compare_reports_the_interval_and_its_verdict():
    base = nlls(1, 1.2)
    row = results.compare(_frame({"a": base, "b": base * 0.97}), "a", "b").iloc[0]
    iv = uncertainty.paired_bootstrap(base, base * 0.97, DENSE)
    assert (row["low"], row["high"], row["paragraphs"], row["verdict"]) == (iv.low, iv.high, P, "holds")
    assert row["difference"] == pytest.approx(iv.effect, rel=1e-9)
    noisy = results.compare(_frame({"a": base, "b": nlls(5, 1.2)}), "a", "b").iloc[0]
    assert noisy["low"] < 0 < noisy["high"] and noisy["verdict"] == "within noise"


def test_compare_without_paragraphs_falls_back_to_seed_signs():
    base = nlls(1, 1.2)
    frame = _frame({"a": base, "b": base * 0.97}).assign(paragraph_nll=None)
    row = results.compare(frame, "a", "b").iloc[0]
    assert np.isnan(row["low"]) and row["paragraphs"] == 0 and row["verdict"] == "holds"


def test_compare_refuses_two_evaluations_of_one_cell():
    base = nlls(1, 1.2)
    frame = _frame({"a": base, "b": base * 0.97})
    with pytest.raises(ValueError, match="two records"):
        results.compare(pd.concat([frame, frame[frame["label"] == "b"]]), "a", "b")


def test_describe_says_the_interval_or_that_there_is_none():
    base = nlls(1, 1.2)
    row = results.compare(_frame({"a": base, "b": base * 0.97}), "a", "b").iloc[0]
    text = results.describe(row, names={"a": "Wanda", "b": "M-Wanda"}.get)
    assert text.startswith("M-Wanda ") and " vs Wanda " in text and text.endswith(": holds.")
    assert (
        f"95% interval {row['low'] * 100:+.2f} to {row['high'] * 100:+.2f} over {P} paragraphs x {S} seeds; "
        f"{row['h_low'] * 100:+.2f} to {row['h_high'] * 100:+.2f} over {L} languages, {P} pages, {S} seeds"
        in text
    )
    bare = results.compare(_frame({"a": base, "b": base * 0.97}).assign(paragraph_nll=None), "a", "b").iloc[0]
    assert "no paragraph data" in results.describe(bare)


def test_hierarchical_interval_is_the_same_statistic_and_wider_when_languages_disagree():
    """Half the languages gain, half lose: resampling paragraphs and seeds alone holds the
    languages fixed and calls the mean effect sure; resampling languages too does not."""
    base = nlls(1, 1.2, noise=0.01)
    gain = np.array([0.95, 0.95, 1.04, 1.04])[None, :, None]  # per-language effect, mean about -0.5%
    other = base * gain
    pages = np.repeat(np.arange(P // 3), 3)  # 10 pages of 3 paragraphs
    flat = uncertainty.paired_bootstrap(base, other, DENSE, n_boot=500)
    deep = uncertainty.hierarchical_bootstrap(base, other, DENSE, pages, n_boot=500)
    assert deep.effect == pytest.approx(flat.effect, rel=1e-12)
    assert (deep.languages, deep.pages, deep.paragraphs, deep.seeds) == (L, P // 3, P, S)
    assert flat.verdict == "holds" and deep.verdict == "within noise"
    assert deep.high - deep.low > 5 * (flat.high - flat.low)


def test_compare_bases_its_verdict_on_the_hierarchical_interval():
    """The languages disagree: the paragraph bootstrap alone would call it; the verdict does not."""
    base = nlls(1, 1.2, noise=0.01)
    other = base * np.array([0.95, 0.95, 1.04, 1.04])[None, :, None]
    row = results.compare(_frame({"a": base, "b": other}), "a", "b").iloc[0]
    assert row["high"] < 0 and row["h_low"] < 0 < row["h_high"] and row["verdict"] == "within noise"
    assert row["p_value"] > 0.05 and row["pages"] == P  # a text without pages: a paragraph each


def test_pages_of_the_embedded_text_and_a_text_of_another_length_refused():
    from mwanda import data

    row = {"corpus": "embedded", "eval_split": "test", "eval_max_chars": 5000, "eval_sample": "first"}
    ids = data.eval_ids("test", 5000, "first")
    pages = results.paragraph_pages(row, "bpb", len(ids))
    assert list(pages) == [data.page_of(i) for i in ids] and 1 < len(set(pages)) < len(ids)
    assert list(results.paragraph_pages(row, "udhr_bpb", 7)) == list(range(7))
    with pytest.raises(ValueError, match="evaluated on another text"):
        results.paragraph_pages(row, "bpb", len(ids) - 1)


def test_holm_adjusts_step_down_and_keeps_order():
    p = np.array([0.01, 0.04, 0.03, np.nan, 0.005])
    adjusted = uncertainty.holm(p)
    assert np.allclose(adjusted[[4, 0, 2, 1]], [0.02, 0.03, 0.06, 0.06]) and np.isnan(adjusted[3])
    assert np.all(uncertainty.holm(np.array([0.5, 0.9])) == [1.0, 1.0])


def test_hierarchical_pages_move_together():
    """One page holds all the difference: a cluster resample sees it in or out as a whole, so
    the interval is wider than when the same paragraphs count as independent pages."""
    base = nlls(3, 1.1, noise=0.0)
    other = base.copy()
    other[:, :, :3] *= 0.7  # the first page's three paragraphs improve a lot
    clustered = uncertainty.hierarchical_bootstrap(
        base, other, DENSE, np.repeat(np.arange(10), 3), n_boot=800
    )
    separate = uncertainty.hierarchical_bootstrap(base, other, DENSE, np.arange(P), n_boot=800)
    assert clustered.high - clustered.low > 1.3 * (separate.high - separate.low)


def test_hierarchical_bootstrap_is_deterministic_and_checks_its_inputs():
    base, other, pages = nlls(1, 1.2), nlls(2, 1.1), np.repeat(np.arange(10), 3)
    a = uncertainty.hierarchical_bootstrap(base, other, DENSE, pages, n_boot=100)
    assert a == uncertainty.hierarchical_bootstrap(base, other, DENSE, pages.astype(str), n_boot=100)
    same = uncertainty.hierarchical_bootstrap(base, base.copy(), DENSE, pages)
    assert (same.low, same.high, same.verdict) == (0.0, 0.0, "within noise")
    with pytest.raises(ValueError, match="pages gives 29 labels for 30 paragraphs"):
        uncertainty.hierarchical_bootstrap(base, other, DENSE, pages[:-1])
    with pytest.raises(ValueError, match="do not pair"):
        uncertainty.hierarchical_bootstrap(base[:, :2], other, DENSE, pages)


def test_gap_bootstrap_is_the_group_difference_and_resamples_within_groups():
    noise = 1 + 0.01 * np.random.default_rng(4).standard_normal((S, L, P))
    x = DENSE[None] * np.array([1.01, 1.05, 1.06, 1.07])[None, :, None] * noise  # language 0 degrades least
    first = np.array([True, False, False, False])
    pages = np.repeat(np.arange(P // 3), 3)
    gap = uncertainty.gap_bootstrap(x, DENSE, first, pages, n_boot=500)
    per_lang = (x.sum(axis=2) / DENSE.sum(axis=1)).mean(axis=0)
    assert gap.effect == pytest.approx(per_lang[0] - per_lang[1:].mean(), rel=1e-12)
    assert gap.high < 0 and gap.verdict == "holds" and gap.p_value < 0.05
    assert (gap.languages, gap.pages, gap.seeds) == (L, P // 3, S)
    fixed = uncertainty.gap_bootstrap(x, DENSE, first, pages, languages=False, n_boot=500)
    assert fixed.effect == gap.effect and fixed.high - fixed.low < gap.high - gap.low
    with pytest.raises(ValueError, match="both groups"):
        uncertainty.gap_bootstrap(x, DENSE, np.ones(L, bool), pages)


def test_language_gap_rows_read_like_compare_rows():
    noise = 1 + 0.01 * np.random.default_rng(4).standard_normal((S, L, P))
    x = DENSE[None] * np.array([1.01, 1.05, 1.06, 1.07])[None, :, None] * noise
    row = results.language_gap(_frame({"wanda": x}), "wanda", ("l0",)).iloc[0]
    assert (row["other"], row["base"], row["languages"], row["languages_better"]) == (
        "l0",
        "the other 3 languages",
        3,
        3,
    )
    assert row["difference"] == pytest.approx(row["other_mean"] - row["base_mean"]) and row["difference"] < 0
    assert row["h_low"] <= row["low"] <= row["high"] <= row["h_high"] < 0 and row["verdict"] == "holds"
