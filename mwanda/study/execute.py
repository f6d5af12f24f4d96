"""Execute one notebook headless, as ``make figures`` does: papermill's own command line, run in
this process, with one import left out.

    python -m mwanda.study.execute NOTEBOOK OUTPUT [papermill options: -p profile smoke, -f file]

Importing papermill imports nbformat's validator, which imports jsonschema, which builds a
parser for internationalised URIs (the ``rfc3987_syntax`` package, installed for Jupyter's
event schemas) on import: 1.0 of papermill's 1.5 s of imports, paid by every notebook of every
``make figures``. Notebook validation never checks that format, so the package is kept out of
this process (jsonschema imports it optionally and goes on without it). The kernel is reached
over local sockets (ipc) rather than TCP on localhost: no port to race for under ``make -j``, and
no "running over TCP without encryption" warning per notebook. Everything else is papermill's
command line unchanged: same options, same output, same exit status.
"""

from __future__ import annotations

import os
import sys
import tempfile
import uuid

# Notebook schemas check no "iri" format: without this optional import jsonschema skips that checker.
OPTIONAL_IMPORTS_LEFT_OUT = ("rfc3987_syntax",)


def _register_ipc_engine() -> str:
    """Papermill's default engine with kernels on ipc sockets; returns the engine's name."""
    from jupyter_client.manager import AsyncKernelManager
    from papermill.engines import NBClientEngine, papermill_engines

    class IPCKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs) -> None:
            # each kernel its own socket paths (<ip>-<port>): `make -j` runs several at once
            ip = os.path.join(tempfile.gettempdir(), f"mwanda-kernel-{uuid.uuid4().hex[:16]}")
            super().__init__(transport="ipc", ip=ip, **kwargs)

    class IPCEngine(NBClientEngine):
        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, **kwargs):
            kwargs.setdefault("kernel_manager_class", IPCKernelManager)
            return super().execute_managed_notebook(nb_man, kernel_name, **kwargs)

    papermill_engines.register("mwanda-ipc", IPCEngine)
    return "mwanda-ipc"


def _own_parameters(args: list[str]) -> tuple[list[str], list[str]]:
    """``args`` with each parameters file (``-f``) cut to the parameters the input notebook
    declares, and the cut files written (to remove): one file serves every notebook
    (notebooks/params/smoke.yaml), and papermill would warn about each key another notebook
    uses. A ``-p`` the notebook lacks still warns."""

    import yaml
    from papermill.inspection import inspect_notebook

    positional = [a for a in args if a.endswith(".ipynb")]
    if "-f" not in args or not positional:
        return args, []
    declared = set(inspect_notebook(positional[0]))
    out, written = list(args), []
    for i, arg in enumerate(args[:-1]):
        if arg in ("-f", "--parameters_file"):
            with open(args[i + 1], encoding="utf-8") as fh:
                params = yaml.safe_load(fh) or {}
            own = {k: v for k, v in params.items() if k in declared}
            with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False, encoding="utf-8") as tmp:
                yaml.safe_dump(own, tmp)
            out[i + 1] = tmp.name
            written.append(tmp.name)
    return out, written


def main(argv: list[str] | None = None) -> int:
    for name in OPTIONAL_IMPORTS_LEFT_OUT:
        sys.modules.setdefault(name, None)  # None: "import name" raises ImportError
    from papermill.cli import papermill as cli

    args = list(sys.argv[1:] if argv is None else argv)
    if "--engine" not in args:
        args = ["--engine", _register_ipc_engine(), *args]
    args, written = _own_parameters(args)
    try:
        cli.main(args=args, prog_name="papermill", standalone_mode=False)
    except SystemExit as stop:  # papermill exits by itself on some errors
        return stop.code if isinstance(stop.code, int) else 1
    finally:
        for path in written:
            os.unlink(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
