"""scripts/start.sh is a new user's first command: every Python snippet it runs must import only
what that script installs (the standard library, Ironspire, and the direct requirements of
``pip install -e '.[llamacpp]'``), never something the test tools happen to bring along."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

from packaging.requirements import Requirement

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "start.sh"
#: what start.sh installs: the project with this extra
EXTRAS = {"llamacpp"}


def _installed_distributions() -> set[str]:
    names = {"ironspire"}
    for text in importlib.metadata.requires("ironspire") or []:
        req = Requirement(text)
        if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in EXTRAS):
            names.add(req.name.lower().replace("_", "-"))
    return names


def _snippets(script: str) -> list[str]:
    """The code of every ``python -c '...'`` / ``python -c "..."`` in the script."""
    found = re.findall(r"""python -c (?:'([^']*)'|"([^"]*)")""", script)
    return [single or double for single, double in found]


def _imported(code: str) -> set[str]:
    code = code.replace("$PORT", "8765")  # the shell's variables, as the script expands them
    modules = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            modules |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module.split(".")[0])
    return modules


def test_start_script_snippets_import_only_what_it_installs() -> None:
    snippets = _snippets(SCRIPT.read_text())
    assert len(snippets) >= 3  # the default-provider read, the model file, the readiness probe
    allowed = _installed_distributions()
    by_module = importlib.metadata.packages_distributions()
    for code in snippets:
        for module in _imported(code):
            if module in sys.stdlib_module_names or module == "ironspire":
                continue
            dists = {d.lower().replace("_", "-") for d in by_module.get(module, [])}
            assert dists & allowed, (
                f"start.sh runs `{code}`, which imports {module!r} ({', '.join(sorted(dists)) or 'not installed'}): "
                f"not installed by `pip install -e '.[{','.join(sorted(EXTRAS))}]'`; use the standard library "
                "or add it to the project's dependencies")
