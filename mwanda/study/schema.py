"""What a record holds, declared once (pydantic), and its problems said in one line.

A record is the JSON object ``experiments.run`` writes: the config it ran, tidy metric rows, the
paragraph NLLs behind each bits-per-byte row, a pruning summary, provenance and its seconds.
Numbers are JSON numbers as ``json.loads`` gives them (an int or a float, never a bool), checked
strictly: a string "1.2" is damage, not a number to coerce. ``problem`` turns the first error of
a validation into "<where> is <what it holds>, not <what it should be>".
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictStr, ValidationError, model_validator

Number = StrictFloat  # a JSON number, int or float; strict: neither a bool nor a numeric string


class _Open(BaseModel):
    """Fields beyond the declared ones are kept and not checked (configs and provenance grow)."""

    model_config = ConfigDict(extra="allow", strict=True)


class MetricRow(_Open):
    language: StrictStr
    metric: StrictStr
    value: Number


class ParagraphLists(_Open):
    """One language's paragraphs behind one metric: NLL in nats and UTF-8 bytes, paragraph by paragraph."""

    nll: list[Number]
    bytes: list[Number]

    @model_validator(mode="after")
    def _same_length(self) -> ParagraphLists:
        if len(self.nll) != len(self.bytes):
            raise ValueError(f"has {len(self.nll)} nll values but {len(self.bytes)} byte counts")
        return self


class RunConfig(_Open):
    method: StrictStr


class Record(_Open):
    key: StrictStr
    version: StrictStr
    config: RunConfig
    metrics: list[MetricRow]
    paragraphs: dict[StrictStr, dict[StrictStr, ParagraphLists]] = Field(default_factory=dict)
    pruning: dict | None
    provenance: dict
    seconds: Number


# What each kind of field should be, in the words of a problem message.
WANTS = {
    "config": "an object with a method",
    "metrics": "a list",
    "pruning": "an object or null",
    "provenance": "an object",
    "paragraphs": "an object",
    "seconds": "a number",
    "value": "a number",
}
REQUIRED = [name for name, field in Record.model_fields.items() if field.is_required()]


def problem(rec: object) -> str | None:
    """What makes ``rec`` not a record (the first error, in one line), or None."""
    if not isinstance(rec, dict):
        return f"it holds {short(rec)}, not a JSON object"
    missing = [k for k in REQUIRED if k not in rec]
    if missing:
        return f"missing key(s) {missing}"
    try:
        Record.model_validate(rec)
    except ValidationError as err:
        return _say(err.errors()[0], rec)
    return None


def _say(error: dict, rec: dict) -> str:
    """One pydantic error as "<where> is <value>, not <want>"."""
    loc = error["loc"]
    if loc[:1] == ("config",):
        return f"config is {short(rec['config'])}, not {WANTS['config']}"
    if loc[:1] == ("paragraphs",) and len(loc) >= 3:
        where = "paragraphs." + ".".join(map(str, loc[1:3]))
        parts = rec["paragraphs"][loc[1]][loc[2]]
        if error["type"] == "value_error":  # the lengths: the validator's own words
            return f"{where} {error['msg'].removeprefix('Value error, ')}"
        return f"{where} is {short(parts)}, not an object of nll and bytes lists"
    if loc[:1] == ("paragraphs",) and len(loc) == 2:
        return f"paragraphs.{loc[1]} is {short(rec['paragraphs'][loc[1]])}, not an object"
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
    if error["type"] == "missing":
        return f"{where} is missing"
    want = WANTS.get(loc[-1], "an object" if isinstance(loc[-1], int) else "a string")
    return f"{where} is {short(error['input'])}, not {want}"


def short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
