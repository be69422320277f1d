"""Where a name is called or used: call sites for ``analyze calls``, usages for ``refactor usages``.

Matching is by name, not by type: ``calls submit_job`` finds ``submit_job(...)``
and ``pool.submit_job(...)`` alike, which is what a grep that understands
Python would do. A dotted query (``Pool.submit_job``) must match the end of
the dotted expression that is called.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from codetools.sources import ParsedModule
from codetools.symbols import MODULE_SCOPE, dunder_all, walk_scoped


@dataclass(frozen=True)
class Site:
    """One place in the code: file, line, enclosing function, what kind of use, and the line's text."""

    module: ParsedModule
    lineno: int
    scope: str
    kind: str

    @property
    def location(self) -> str:
        return f"{self.module.display}:{self.lineno}"

    @property
    def text(self) -> str:
        return self.module.line(self.lineno)


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else f"?.{node.attr}"
    return None


def _matches(node: ast.AST, query: str) -> bool:
    dotted = _dotted(node)
    return dotted is not None and (dotted == query or dotted.endswith("." + query))


def find_call_sites(modules: list[ParsedModule], name: str) -> list[Site]:
    """Every ``name(...)`` / ``obj.name(...)`` call, sorted by file and line."""
    sites = []
    for module in modules:
        for node, scope in walk_scoped(module.tree):
            if isinstance(node, ast.Call) and _matches(node.func, name):
                sites.append(Site(module, node.lineno, scope, "call"))
    return sorted(sites, key=lambda site: (site.module.display, site.lineno))


def find_usages(modules: list[ParsedModule], name: str) -> list[Site]:
    """Definitions, imports, calls, references and ``__all__`` entries of ``name``.

    Each line is reported once, with the most specific kind found on it
    (definition > import > call > reference).
    """
    rank = {"definition": 0, "import": 1, "export": 2, "call": 3, "reference": 4}
    found: dict[tuple[str, int], Site] = {}

    def record(module: ParsedModule, lineno: int, scope: str, kind: str) -> None:
        key = (module.display, lineno)
        if key not in found or rank[kind] < rank[found[key].kind]:
            found[key] = Site(module, lineno, scope, kind)

    for module in modules:
        called = {id(node.func) for node in ast.walk(module.tree) if isinstance(node, ast.Call)}
        for node, scope in walk_scoped(module.tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and node.name == name:
                record(module, node.lineno, scope, "definition")
            elif isinstance(node, ast.Import | ast.ImportFrom):
                if any(name in (alias.name.split(".")[-1], alias.asname) for alias in node.names):
                    record(module, node.lineno, scope, "import")
            elif isinstance(node, ast.Name | ast.Attribute):
                final = node.id if isinstance(node, ast.Name) else node.attr
                if final != name:
                    continue
                if isinstance(node.ctx, ast.Store) and scope == MODULE_SCOPE:
                    record(module, node.lineno, scope, "definition")
                else:
                    record(module, node.lineno, scope, "call" if id(node) in called else "reference")
        if name in (dunder_all(module.tree) or []):
            for node in module.tree.body:
                if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign) and any(
                    isinstance(c, ast.Constant) and c.value == name for c in ast.walk(node)
                ):
                    record(module, node.lineno, MODULE_SCOPE, "export")
    return sorted(found.values(), key=lambda site: (site.module.display, site.lineno))


def format_sites(sites: list[Site], title: str) -> str:
    """``file:line  [kind] in scope: source`` lines under a one-line title with counts."""
    files = {site.module.display for site in sites}
    lines = [f"{title}: {len(sites)} in {len(files)} file(s)"]
    for site in sites:
        lines.append(f"  {site.location}  [{site.kind}] in {site.scope}: {site.text}")
    return "\n".join(lines)
