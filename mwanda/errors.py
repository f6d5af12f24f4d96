"""The base classes of every error and warning a user can cause and act on.

The CLI prints a ``UserError`` as one line (what, where, the fix) and exits with code 2, and a
``MwandaWarning`` as one ``mwanda: warning: ...`` line; anything else is a bug and keeps its
traceback. Each module's error or warning subclasses these next to the code that raises it.
"""


class UserError(Exception):
    """Bad input (arguments, files, models, data); the message names the fix."""


class MwandaWarning(UserWarning):
    """The run goes on, but the user should know (less data, less coverage, a damaged record)."""


def first_line(err: BaseException) -> str:
    """``Type: first line`` of a library's error, to quote inside a one-line UserError (datasets'
    and lm-eval's messages run to many lines)."""
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0] if lines else ''}"
