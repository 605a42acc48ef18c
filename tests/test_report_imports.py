"""compare and report import in one direction only; compare runs its workers in-process."""

from __future__ import annotations

import ast
from pathlib import Path

import bodisc

PACKAGE = Path(bodisc.__file__).parent


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside functions (relative ones resolved)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # from pkg import mod
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {m for m in imported_modules(path) if m in modules and m != name}
            for name, path in modules.items()}


def test_the_walk_sees_lazy_and_relative_imports():
    edges = graph()
    assert "bodisc.runtime.cache" in edges["bodisc.compare"]
    assert "bodisc.compare" in edges["bodisc.report"]  # inside functions
    assert "bodisc.config" in edges["bodisc.report"]


def test_compare_does_not_import_report():
    edges = graph()
    assert "bodisc.report" not in edges["bodisc.compare"]
    assert not {"bodisc.compare", "bodisc.report"} & edges["bodisc.runtime.cache"]


def test_compare_and_report_are_in_no_import_circle():
    edges = graph()

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            here = todo.pop()
            if here == goal:
                return True
            if here not in seen:
                seen.add(here)
                todo.extend(edges.get(here, ()))
        return False

    assert reaches("bodisc.report", "bodisc.compare")
    assert not reaches("bodisc.compare", "bodisc.report")


def test_compare_runs_no_commands():
    imported = imported_modules(PACKAGE / "compare.py")
    assert not {"subprocess", "bodisc.cli"} & imported
    from typer.main import get_command

    from bodisc.cli import app

    compare = get_command(app).commands["compare"]  # type: ignore[attr-defined]
    assert "--only" not in {opt for p in compare.params for opt in p.opts}
