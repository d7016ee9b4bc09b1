"""The layers of shared/DESIGN.md, checked on the source: data flows down, and no module imports from a layer above
its own. A new import that runs back up fails here, naming the file, the line and the two layers."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "qopemu"

# Rank of each layer, top first. The package's `__init__.py` is the public API (it hands out `Server`, so it sits with
# the entry modules), but at import time it only defines `__version__`: `from qopemu import __version__` is a base
# import.
LAYERS = {
    "entry": 5,  # cli.py, demo.py, server.py: wire the layers together
    "edge": 4,
    "platform": 3,
    "engine": 2,
    "results": 1,
    "base": 0,  # qmconfig.py, settings.py, and the names `qopemu` itself defines
}
_ENTRY_MODULES = {"cli", "demo", "server", "__main__", "__init__"}


def layer_of(module: str) -> str:
    """The layer of a dotted module name under `qopemu` (`qopemu.engine.compiler` -> `engine`)."""
    parts = module.split(".")[1:]
    if not parts or parts[0] in ("qmconfig", "settings"):
        return "base"
    if parts[0] in _ENTRY_MODULES:
        return "entry"
    return parts[0]


def module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    return ".".join(relative.parts)


def _is_module(name: str) -> bool:
    return (PACKAGE / f"{name}.py").exists() or (PACKAGE / name).is_dir()


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, dotted module) of every qopemu import in a file, at any depth (imports inside functions count)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name.startswith("qopemu")]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("qopemu"):
            if node.module == "qopemu":  # `from qopemu import qmconfig` names a module; `__version__` is the package's
                found += [(node.lineno, f"qopemu.{alias.name}" if _is_module(alias.name) else "qopemu")
                          for alias in node.names]
            else:
                found.append((node.lineno, node.module))
    return found


def upward_imports() -> list[str]:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        mine = layer_of(module_name(path))
        for line, module in imported_modules(path):
            theirs = layer_of(module)
            if LAYERS[theirs] > LAYERS[mine]:
                problems.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {mine} imports {module} ({theirs})")
    return problems


def test_every_module_belongs_to_a_known_layer():
    unknown = {module_name(p) for p in PACKAGE.rglob("*.py") if layer_of(module_name(p)) not in LAYERS}
    assert not unknown, f"modules outside the layers of shared/DESIGN.md: {sorted(unknown)}"


def test_no_import_runs_back_up_a_layer():
    assert upward_imports() == []


def test_the_check_sees_an_upward_import(tmp_path):
    # The rule itself: an engine module importing the platform is the kind of import the check must catch.
    assert LAYERS[layer_of("qopemu.platform.qop")] > LAYERS[layer_of("qopemu.engine.runtime")]
    assert layer_of("qopemu.edge.frontend") == "edge" and layer_of("qopemu.qmconfig") == "base"
    source = tmp_path / "probe.py"
    source.write_text("def f():\n    from qopemu.platform.qop import Qop\nfrom qopemu import server\n")
    assert sorted(imported_modules(source)) == [(2, "qopemu.platform.qop"), (3, "qopemu.server")]
