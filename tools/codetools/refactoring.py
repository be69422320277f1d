"""Refactoring helpers: rename (rope), dead code (vulture), and a safety check for moving a symbol.

rope does the renaming because it follows imports, ``from x import y as z``
and method overrides, which a textual replace would get wrong. The rope
project is rooted at the folder above the top-level package (so absolute
imports resolve), ``ropefolder=None`` keeps it from writing ``.ropeproject``,
and only the files under ``--path`` are searched or changed.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import vulture
from rope.base.project import Project
from rope.refactor.rename import Rename

from codetools import ToolError
from codetools.importgraph import resolve_scope
from codetools.sources import ParsedModule, display_path, iter_files, parse_tree
from codetools.symbols import definitions, top_level_names
from codetools.textreplace import FileChange


@dataclass(frozen=True)
class Definition:
    """Where a symbol is defined: module, qualname, 1-based line and character offset of its name."""

    module: ParsedModule
    qualname: str
    lineno: int
    offset: int

    @property
    def location(self) -> str:
        return f"{self.module.display}:{self.lineno}"


def _offset_of(module: ParsedModule, lineno: int, pattern: re.Pattern[str]) -> int | None:
    lines = module.source.splitlines(keepends=True)
    match = pattern.search(lines[lineno - 1])
    if match is None:
        return None
    return sum(len(line) for line in lines[: lineno - 1]) + match.start("name")


def find_definitions(modules: list[ParsedModule], name: str) -> list[Definition]:
    """Functions, classes, methods and module-level variables called ``name`` (or ``Class.method``)."""
    simple = name.rsplit(".", 1)[-1]
    def_pattern = re.compile(rf"\b(?:def|class)\s+(?P<name>{re.escape(simple)})\b")
    assign_pattern = re.compile(rf"^\s*(?P<name>{re.escape(simple)})\b")
    found = []
    for module in modules:
        for qualname, node in definitions(module):
            if qualname == name or (node.name == name and "." not in name):
                offset = _offset_of(module, node.lineno, def_pattern)
                if offset is not None:
                    found.append(Definition(module, qualname, node.lineno, offset))
        if "." not in name:
            bound = top_level_names(module.tree).get(name)
            if isinstance(bound, ast.Assign | ast.AnnAssign):
                offset = _offset_of(module, bound.lineno, assign_pattern)
                if offset is not None:
                    found.append(Definition(module, name, bound.lineno, offset))
    return found


def pick_definition(modules: list[ParsedModule], name: str) -> Definition:
    """The single definition of ``name``; a ToolError lists candidates when there are several."""
    found = find_definitions(modules, name)
    if not found:
        raise ToolError(f"no definition of {name!r} under the given path")
    if len(found) > 1:
        places = ", ".join(f"{item.module.name}.{item.qualname} ({item.location})" for item in found)
        raise ToolError(
            f"{name!r} is defined {len(found)} times: {places}; qualify it (Class.method) or pass --file"
        )
    return found[0]


def rename(
    path: Path, old_name: str, new_name: str, *, apply: bool, file: Path | None = None
) -> list[FileChange]:
    """Rename a symbol everywhere under ``path`` with rope; write the files only when ``apply``.

    ``file`` narrows the search for the definition when the name is defined in several files.
    Returns one FileChange per file rope would change (its ``diff()`` is the preview).
    """
    if not new_name.isidentifier():
        raise ToolError(f"{new_name!r} is not a valid Python identifier")
    modules = parse_tree(path)
    candidates = parse_tree(file) if file is not None else modules
    definition = pick_definition(candidates, old_name)
    root = resolve_scope(definition.module.path).search_root
    project = Project(str(root), ropefolder=None)
    try:
        resource = project.get_file(definition.module.path.resolve().relative_to(root).as_posix())
        scope = [project.get_file(m.path.resolve().relative_to(root).as_posix()) for m in modules]
        changes = Rename(project, resource, definition.offset).get_changes(
            new_name, resources=scope, in_hierarchy="." in definition.qualname
        )
        planned = [
            FileChange(
                path=root / change.resource.path,
                old_text=change.old_contents if change.old_contents is not None else change.resource.read(),
                new_text=change.new_contents,
                count=1,
            )
            for change in changes.changes
        ]
        if apply:
            project.do(changes)
    finally:
        project.close()
    return sorted(planned, key=lambda change: display_path(change.path))


@dataclass(frozen=True)
class UnusedItem:
    """Something vulture found no use of."""

    location: str
    kind: str
    name: str
    confidence: int
    size: int


def find_unused(path: Path, min_confidence: int = 60) -> list[UnusedItem]:
    """vulture over the Python files under ``path`` (same skip rules as every tool).

    Only uses inside the scanned files count: a function used only by tests
    looks unused when ``--path`` excludes the tests.
    """
    scavenger = vulture.Vulture()
    scavenger.scavenge([str(file) for file in iter_files(path, ["py"])])
    items = scavenger.get_unused_code(min_confidence=min_confidence)
    return [
        UnusedItem(
            location=f"{display_path(Path(item.filename))}:{item.first_lineno}",
            kind=item.typ,
            name=item.name,
            confidence=item.confidence,
            size=item.size,
        )
        for item in sorted(items, key=lambda item: (display_path(Path(item.filename)), item.first_lineno))
    ]
