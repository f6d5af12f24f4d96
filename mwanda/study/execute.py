"""Execute one notebook headless, as ``make figures`` does: papermill's own command line, run in
this process, with one import left out.

    python -m mwanda.study.execute NOTEBOOK OUTPUT [papermill options: -p profile smoke, -f file]

Importing papermill imports nbformat's validator, which imports jsonschema, which builds a
parser for internationalised URIs (the ``rfc3987_syntax`` package, installed for Jupyter's
event schemas) on import: 1.0 of papermill's 1.5 s of imports, paid by every notebook of every
``make figures``. Notebook validation never checks that format, so the package is kept out of
this process (jsonschema imports it optionally and goes on without it). Everything else is
papermill's command line unchanged: same options, same output, same exit status.
"""

from __future__ import annotations

import sys

# Notebook schemas check no "iri" format: without this optional import jsonschema skips that checker.
OPTIONAL_IMPORTS_LEFT_OUT = ("rfc3987_syntax",)


def main(argv: list[str] | None = None) -> int:
    for name in OPTIONAL_IMPORTS_LEFT_OUT:
        sys.modules.setdefault(name, None)  # None: "import name" raises ImportError
    from papermill.cli import papermill as cli

    try:
        cli.main(
            args=list(sys.argv[1:] if argv is None else argv), prog_name="papermill", standalone_mode=False
        )
    except SystemExit as stop:  # papermill exits by itself on some errors
        return stop.code if isinstance(stop.code, int) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
