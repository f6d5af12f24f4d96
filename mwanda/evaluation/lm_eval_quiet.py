"""lm-eval inside a notebook, quietly: its expected notes filtered (and truncated items counted),
``datasets``' progress bars off, and ``HFLM`` around the in-memory pruned model."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any


class DropExpectedNotes(logging.Filter):
    """lm-eval messages that report what is intended: the note, once per task that uses
    ``custom_dataset`` (every proxy task), about CLI ``--metadata``, which does not apply here;
    the warning that a mirror's overlay task overrides lm-eval's own (that is the redirect); and
    that xcopa's own config leaves its metric's defaults to lm-eval; and HFLM's two warnings that
    it was handed a model object rather than a name (the in-memory pruned model, on purpose).
    HFLM's warning for each item it truncates to the model's context is counted instead: the
    count goes into the result, once, rather than a line per item into a notebook."""

    NOTES = (
        "Custom kwargs can be passed",
        "overrides existing task from",
        "is defined, but aggregation is not",  # lm-eval's own xcopa config: it takes the defaults
        "is defined, but higher_is_better is not",
        "`pretrained` model kwarg is not of type `str`",  # we pass the in-memory (pruned) model on purpose
        "Passed an already-initialized model through `pretrained`",
    )

    def __init__(self) -> None:
        super().__init__()
        self.truncated = 0  # items lm-eval cut from the left to fit the model's context

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "Truncating" in message and "from the left" in message:
            self.truncated += 1  # one warning per item: counted, and reported once in the result
            return False
        return not any(note in message for note in self.NOTES)


@contextlib.contextmanager
def quiet_lm_eval_notes() -> Iterator[DropExpectedNotes]:
    names = ("lm_eval.api.task", "lm_eval.tasks._index", "lm_eval.models.huggingface")
    loggers = [logging.getLogger(n) for n in names]
    note = DropExpectedNotes()
    for logger in loggers:
        logger.addFilter(note)
    try:
        yield note
    finally:
        for logger in loggers:
            logger.removeFilter(note)


def hflm(model: Any, tokenizer: Any, batch_size: int | str, max_length: int | None, progress: bool) -> Any:
    """lm-eval's HFLM around the in-memory model; without ``progress``, with lm-eval's own switch
    for its progress bars turned on (``simple_evaluate`` does not pass one through)."""
    from lm_eval.models.huggingface import HFLM

    class QuietHFLM(HFLM):
        def loglikelihood(self, requests: list, disable_tqdm: bool = False) -> list:
            return super().loglikelihood(requests, disable_tqdm=True)

    cls = HFLM if progress else QuietHFLM
    return cls(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, max_length=max_length)


@contextlib.contextmanager
def no_datasets_progress_bars() -> Iterator[None]:
    """``datasets`` draws a bar for every split it prepares and every map/filter lm-eval runs:
    hundreds of lines above a notebook's figures, saying nothing. Restored afterwards."""
    import datasets

    was_disabled = datasets.utils.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            datasets.enable_progress_bars()
