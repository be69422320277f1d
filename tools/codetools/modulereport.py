"""Module-level reports for ``analyze``: the import graph and the ``__all__`` exports."""

from __future__ import annotations

import ast
from pathlib import Path

from codetools.importgraph import build_module_graph
from codetools.sources import ParsedModule
from codetools.symbols import dunder_all, resolve_relative, top_level_names


def format_imports(path: Path) -> str:
    """Each module with the internal modules it imports (line numbers) and the external packages it uses."""
    graph = build_module_graph(path)
    lines = []
    for module in graph.modules:
        lines.append(module)
        for imported in sorted(graph.imports[module]):
            numbers = ", ".join(str(number) for number, _ in graph.import_lines(module, imported))
            lines.append(f"  -> {imported}  (line {numbers})")
        if graph.external[module]:
            lines.append(f"  external: {', '.join(sorted(graph.external[module]))}")
    external_use: dict[str, int] = {}
    for packages in graph.external.values():
        for package in packages:
            external_use[package] = external_use.get(package, 0) + 1
    ranked = sorted(external_use.items(), key=lambda item: (-item[1], item[0]))
    lines.append("")
    lines.append(f"{len(graph.modules)} modules, {len(graph.edges())} internal imports")
    lines.append(
        "external packages (modules using them): " + (", ".join(f"{n} ({c})" for n, c in ranked) or "-")
    )
    return "\n".join(lines)


def describe_binding(module: ParsedModule, name: str, bound: dict[str, ast.AST]) -> str:
    """What ``name`` is in ``module``: ``class``, ``function``, ``variable``, ``from pkg.mod`` or ``MISSING``."""
    node = bound.get(name)
    if node is None:
        return "MISSING (listed in __all__ but never bound)"
    if isinstance(node, ast.ClassDef):
        return "class"
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        return "function"
    if isinstance(node, ast.ImportFrom):
        return f"from {resolve_relative(module, node.level, node.module)}"
    if isinstance(node, ast.Import):
        return "module"
    return "variable"


def format_exports(modules: list[ParsedModule]) -> str:
    """Each module's ``__all__``: what every listed name is, and names listed but never bound."""
    lines = []
    without = []
    for module in modules:
        names = dunder_all(module.tree)
        if names is None:
            without.append(module.name)
            continue
        bound = top_level_names(module.tree)
        lines.append(f"{module.name}  ({module.display})  {len(names)} names")
        width = max((len(name) for name in names), default=0)
        for name in names:
            lines.append(f"  {name:<{width}}  {describe_binding(module, name, bound)}")
    lines.append("")
    lines.append(f"{len(modules) - len(without)} modules define __all__; {len(without)} do not")
    if without:
        lines.append("without __all__: " + ", ".join(without))
    return "\n".join(lines)
