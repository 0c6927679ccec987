"""The package's layers (schema -> domain -> config -> study -> checks -> stages and tools ->
CLI, in `.importlinter`): no module imports from a layer above its own, function bodies
included, so no import cycle can come back; every module has its place in the contract; and
the few imports left inside functions say why."""

from __future__ import annotations

import ast
import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "inoculate"
MAX_LOCAL_IMPORTS = 30  # of the package's own modules, each with a reason


def _modules() -> set[str]:
    out = set()
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] != "__init__":
            out.add(".".join(parts))
    return out


def _function_local_imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(fn):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("inoculate"):
                    found.append((node.lineno, node.module))
    return found


def test_import_linter_contracts_hold(repo):
    tool = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    assert tool, "import-linter is not installed: pip install -e '.[test]'"
    proc = subprocess.run([tool], cwd=repo, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"lint-imports:\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}"


def test_every_module_has_a_layer(repo):
    """A new module must be placed in `.importlinter`, or the contract would not look at it."""
    parser = configparser.ConfigParser()
    parser.read(repo / ".importlinter")
    layers = parser["importlinter:contract:layers"]["layers"]
    named = set(re.findall(r"inoculate(?:\.\w+)+", layers))
    covered = {m for m in _modules() if any(m == n or m.startswith(n + ".") for n in named)}
    assert _modules() - covered == set(), "modules without a layer in .importlinter"


def test_few_function_local_imports_each_with_its_reason():
    local = []
    for path in sorted(PACKAGE.rglob("*.py")):
        lines = path.read_text(encoding="utf-8").splitlines()
        for lineno, module in _function_local_imports(path):
            where = f"{path.relative_to(PACKAGE.parent)}:{lineno} ({module})"
            assert re.search(r"noqa: [A-Z0-9, ]*PLC0415 - \S", lines[lineno - 1]), f"{where}: no reason given"
            local.append(where)
    assert len(local) <= MAX_LOCAL_IMPORTS, "\n".join(local)
