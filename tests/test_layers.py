"""Every import points down (ARCHITECTURE.md's picture), lazy imports inside functions included: converters/
sits wholly below runtime/ (ggml's C functions come from the bottom layer's ggml_lib.py)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "ggufkit"

# Top to bottom, as ARCHITECTURE.md draws them; a module may import its own layer and those below.
LAYERS = [
    {"cli", "__main__"},
    {"fit"},
    {"bench", "evaluate", "quantize", "imatrix"},
    {"runtime"},
    {"converters", "surgery"},  # file -> file: convert --split-max-size writes through surgery/split.py
    {"formats"},
    {"families"},
    {"errors", "choices", "units", "fsutil", "system", "ggml_lib", "loadorder", "ggufpy", "importhooks", "names",
     "workers", "__init__"},
]
# Beside the house: they use it, and only the command line uses them.
BESIDE = {"samples", "models"}


def _part(module: str) -> str:
    """The layer part of a module name: `ggufkit.converters.cache` -> "converters"."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    # `from ggufkit import ggml_lib` names a module; `from ggufkit.errors import X` names X too
    return {m for m in found if m.startswith("ggufkit.")
            and ((PACKAGE / m.split(".")[1]).is_dir() or (PACKAGE / f"{m.split('.')[1]}.py").is_file())}


def _level(part: str) -> int | None:
    return next((i for i, layer in enumerate(LAYERS) if part in layer), None)


def test_every_import_points_down():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        src = _part(".".join(rel.parts))
        for module in _imports(path):
            dst = _part(module)
            if dst == src:
                continue
            if dst in BESIDE:
                if src != "cli" and src not in BESIDE:
                    upward.append(f"{rel} imports {module} (beside the house: only cli/ uses it)")
                continue
            if src in BESIDE:
                continue
            a, b = _level(src), _level(dst)
            assert a is not None and b is not None, f"{rel} or {module}: add its package to LAYERS"
            if b < a:
                upward.append(f"{rel} imports {module}")
    assert not upward, "imports that point up:\n" + "\n".join(sorted(set(upward)))

