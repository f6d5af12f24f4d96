"""The package's layers, checked: core <- evaluation <- study, builders apart (docs/layout.md)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "mwanda"
# What each layer may import from mwanda (besides itself and the shared plumbing).
PLUMBING = {"mwanda", "mwanda.errors", "mwanda.io"}
DATA = {"data", "hub_data", "udhr"}  # the data layer: the embedded corpus, Hub text, every UDHR declaration
ALLOWED = {
    "core": set(),
    "evaluation": DATA,
    "study": {"core", "evaluation"} | DATA,
    "build": {"core", "evaluation"} | DATA,
}


def mwanda_imports(path: Path) -> set[str]:
    """Every mwanda module ``path`` imports, at any depth (lazy imports count too)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mwanda"):
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("mwanda")}
    return out


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_layers_import_only_what_is_below_them(layer):
    bad = []
    for path in sorted((PKG / layer).glob("*.py")):
        for mod in mwanda_imports(path):
            target = layer_of(mod)
            if mod in PLUMBING or target in (layer, "errors", "io", "__version__", "REPO_ROOT"):
                continue
            if target not in ALLOWED[layer]:
                bad.append(f"{path.relative_to(PKG)} imports {mod}")
    assert bad == []


def test_importing_the_experiment_runner_loads_no_builder_code():
    code = (
        "import sys; import mwanda.study.experiments, mwanda.study.sweep, mwanda.study.results, mwanda.cli; "
        "print(sorted(m for m in sys.modules if m.startswith('mwanda.build')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_every_module_is_listed_in_the_layout_page():
    readme = (PKG.parent / "docs" / "layout.md").read_text()
    missing = [
        str(p.relative_to(PKG.parent))
        for p in sorted(PKG.rglob("*.py"))
        if p.name != "__init__.py" and f"`{p.relative_to(PKG.parent)}`" not in readme
    ]
    assert missing == []


def test_no_function_is_longer_than_60_lines():
    long = [
        f"{path.relative_to(PKG)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for path in sorted(PKG.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno >= 60
    ]
    assert long == []


def test_the_pruning_core_and_cli_load_no_study_package():
    """`mwanda prune` works with the core's dependencies alone (see pyproject.toml's extras)."""
    code = (
        "import sys; import mwanda.core.prune, mwanda.core.report, mwanda.cli; mwanda.cli.build_parser(); "
        "print(sorted(m for m in ('lm_eval', 'pandas', 'matplotlib', 'datasets', 'papermill', 'seaborn', "
        "'submitit') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_no_module_is_longer_than_about_450_lines():
    long = [
        f"{p.relative_to(PKG)} ({n} lines)"
        for p in sorted(PKG.rglob("*.py"))
        if (n := len(p.read_text().splitlines())) > 460
    ]
    assert long == []


def test_no_module_uses_another_modules_private_names():
    """Public names for what other modules use: no ``from mwanda.x import _name`` or
    ``x._name`` on an imported mwanda module."""
    bad = []
    for path in sorted(PKG.rglob("*.py")):
        tree = ast.parse(path.read_text())
        modules = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mwanda"):
                bad += [f"{path.name}: {node.module}.{a.name}" for a in node.names if _private(a.name)]
                modules |= {a.asname or a.name for a in node.names}
            elif isinstance(node, ast.Import):
                modules |= {
                    (a.asname or a.name).split(".")[0] for a in node.names if a.name.startswith("mwanda")
                }
        bad += [
            f"{path.name}:{node.lineno} {node.value.id}.{node.attr}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in modules
            and _private(node.attr)
        ]
    assert bad == []


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")
