"""A record's schema (study/schema.py) through ``records.record_problem``: what each field must
hold and the one line that names the first problem. Damaged files, end to end: test_results_store."""

from __future__ import annotations

from mwanda.study.records import record_problem


def test_record_paragraph_lists_must_hold_numbers():
    """Paragraph NLLs feed the bootstrap: a bool, a string or a null in them, or lists of unequal
    length, make the record damaged (checked by the types of the whole list at once)."""
    base = {
        "key": "k",
        "version": "2",
        "config": {"method": "wanda"},
        "metrics": [{"language": "en", "metric": "bpb", "value": 1.0}],
        "pruning": None,
        "provenance": {},
        "seconds": 1.0,
    }

    def with_parts(nll, size):
        return base | {"paragraphs": {"bpb": {"en": {"nll": nll, "bytes": size}}}}

    assert record_problem(with_parts([1.5, 2, 3.0], [10, 20, 30]), "k") is None
    assert record_problem(with_parts([], []), "k") is None
    for nll in ([1.5, True, 3.0], [1.5, "2", 3.0], [1.5, None, 3.0], "1.5"):
        assert "not an object of nll and bytes lists" in record_problem(with_parts(nll, [10, 20, 30]), "k")
    assert "2 nll values but 3 byte counts" in record_problem(with_parts([1.0, 2.0], [1, 2, 3]), "k")


def test_record_metric_rows_are_checked():
    rec = {
        "key": "k",
        "version": "2",
        "config": {"method": "wanda"},
        "pruning": None,
        "provenance": {},
        "seconds": 1.0,
    }
    good = {"language": "en", "metric": "bpb", "value": 1.0}
    assert record_problem(rec | {"metrics": [good, good | {"value": 2}]}, "k") is None
    assert "metrics[1] is 3" in record_problem(rec | {"metrics": [good, 3]}, "k")
    assert "metrics[0].value is True" in record_problem(rec | {"metrics": [good | {"value": True}]}, "k")
    assert "metrics[0].metric is missing" in record_problem(
        rec | {"metrics": [{"language": "en", "value": 1}]}, "k"
    )
    assert "metrics[0].language is 7" in record_problem(rec | {"metrics": [good | {"language": 7}]}, "k")
