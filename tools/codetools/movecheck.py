"""Safety check for moving a top-level symbol to another module (``refactor move``).

It answers what a careful reviewer would ask before the move: what the
symbol needs from its current module, who imports it from there, whether the
destination already has that name, and whether the new imports close an
import cycle (the usual way such a move breaks at import time). Nothing is
written.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

from codetools import ToolError
from codetools.importgraph import build_module_graph, find_cycles, strongly_connected_components
from codetools.sources import ParsedModule, parse_tree
from codetools.symbols import dunder_all, import_aliases, resolve_relative, top_level_names


@dataclass
class MovePlan:
    """Everything the check found; ``verdict`` sums it up."""

    symbol: str
    source: ParsedModule
    node: ast.AST
    destination: str
    destination_path: Path
    destination_exists: bool
    from_source: list[str] = field(default_factory=list)
    already_there: list[str] = field(default_factory=list)
    destination_imports: list[int] = field(default_factory=list)
    imports_to_copy: list[str] = field(default_factory=list)
    importers: list[tuple[ParsedModule, int, str]] = field(default_factory=list)
    source_uses: list[int] = field(default_factory=list)
    in_source_all: bool = False
    clash: str | None = None
    new_cycles: list[list[str]] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        if self.clash:
            return f"UNSAFE: {self.clash}"
        if self.new_cycles:
            return f"UNSAFE: the move creates {len(self.new_cycles)} import cycle(s)"
        edits = len(self.importers) + len(self.destination_imports) + bool(self.from_source)
        edits += bool(self.source_uses) + self.in_source_all
        return f"SAFE after {edits} edit(s)" if edits else "SAFE: nothing else refers to it"


def _local_names(node: ast.AST) -> set[str]:
    bound: set[str] = set()
    for child in ast.walk(node):
        if isinstance(child, ast.Name) and isinstance(child.ctx, ast.Store | ast.Del):
            bound.add(child.id)
        elif isinstance(child, ast.arg):
            bound.add(child.arg)
        elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and child is not node:
            bound.add(child.name)
    return bound


def _free_names(node: ast.AST) -> set[str]:
    loaded = {
        child.id
        for child in ast.walk(node)
        if isinstance(child, ast.Name) and isinstance(child.ctx, ast.Load)
    }
    return loaded - _local_names(node)


def _import_statement(module: ParsedModule, node: ast.Import | ast.ImportFrom, name: str) -> str:
    for alias in node.names:
        local = alias.asname or alias.name.split(".")[0]
        if local != name:
            continue
        suffix = f" as {alias.asname}" if alias.asname else ""
        if isinstance(node, ast.Import):
            return f"import {alias.name}{suffix}"
        return f"from {resolve_relative(module, node.level, node.module)} import {alias.name}{suffix}"
    return name


def _importers(
    modules: list[ParsedModule], source: ParsedModule, symbol: str
) -> list[tuple[ParsedModule, int, str]]:
    found = []
    for module in modules:
        if module is source:
            continue
        for node in ast.walk(module.tree):
            if (
                isinstance(node, ast.ImportFrom)
                and resolve_relative(module, node.level, node.module) == source.name
            ):
                if any(alias.name == symbol for alias in node.names):
                    found.append((module, node.lineno, module.line(node.lineno)))
        module_aliases = {local for local, target in import_aliases(module).items() if target == source.name}
        for node in ast.walk(module.tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr == symbol
                and isinstance(node.value, ast.Name)
                and node.value.id in module_aliases
            ):
                found.append((module, node.lineno, module.line(node.lineno)))
    return sorted(found, key=lambda item: (item[0].display, item[1]))


def _only_imports_symbol(module: ParsedModule, source: ParsedModule, symbol: str) -> bool:
    names: set[str] = set()
    for node in ast.walk(module.tree):
        if (
            isinstance(node, ast.ImportFrom)
            and resolve_relative(module, node.level, node.module) == source.name
        ):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import) and any(alias.name == source.name for alias in node.names):
            return False
    return names == {symbol}


def check_move(path: Path, symbol: str, destination: str) -> MovePlan:
    """Analyse moving top-level ``symbol`` to module ``destination`` within the package(s) at ``path``."""
    modules = parse_tree(path)
    graph = build_module_graph(path)
    owners = [
        (module, node)
        for module in modules
        if isinstance(
            node := top_level_names(module.tree).get(symbol),
            ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Assign | ast.AnnAssign,
        )
    ]
    if not owners:
        raise ToolError(f"no top-level definition of {symbol!r} under {path}")
    if len(owners) > 1:
        raise ToolError(f"{symbol!r} is defined in several modules: {', '.join(m.name for m, _ in owners)}")
    source, node = owners[0]
    if destination == source.name:
        raise ToolError(f"{symbol!r} already lives in {destination}")
    by_name = {module.name: module for module in modules}
    target = by_name.get(destination)
    plan = MovePlan(
        symbol=symbol,
        source=source,
        node=node,
        destination=destination,
        destination_path=target.path
        if target
        else graph.scope.search_root / (destination.replace(".", "/") + ".py"),
        destination_exists=target is not None,
    )
    bound = top_level_names(source.tree)
    available = top_level_names(target.tree) if target is not None else {}
    for name in sorted(_free_names(node) - {symbol}):
        binding = bound.get(name)
        if binding is None:
            continue
        if name in available:
            plan.already_there.append(name)
        elif isinstance(binding, ast.Import | ast.ImportFrom):
            plan.imports_to_copy.append(_import_statement(source, binding, name))
        else:
            plan.from_source.append(name)
    importers = _importers(modules, source, symbol)
    plan.importers = [item for item in importers if item[0] is not target]
    plan.destination_imports = [lineno for module, lineno, _ in importers if module is target]
    plan.source_uses = sorted(
        {
            child.lineno
            for statement in source.tree.body
            if statement is not node
            for child in ast.walk(statement)
            if isinstance(child, ast.Name) and child.id == symbol
        }
    )
    plan.in_source_all = symbol in (dunder_all(source.tree) or [])
    if target is not None:
        existing = top_level_names(target.tree).get(symbol)
        if existing is not None and not (
            isinstance(existing, ast.ImportFrom)
            and resolve_relative(target, existing.level, existing.module) == source.name
        ):
            plan.clash = f"{destination} already defines {symbol!r} (line {getattr(existing, 'lineno', '?')})"
    plan.new_cycles = _new_cycles(graph.imports, plan, modules)
    return plan


def _new_cycles(imports: dict[str, set[str]], plan: MovePlan, modules: list[ParsedModule]) -> list[list[str]]:
    """Cycles in the import graph after the move that were not tangles before it."""
    before = [set(component) for component in strongly_connected_components(imports) if len(component) > 1]
    after = {module: set(targets) for module, targets in imports.items()}
    after.setdefault(plan.destination, set())
    source = plan.source.name
    if plan.from_source:
        after[plan.destination].add(source)
    for statement in plan.imports_to_copy:
        words = statement.split()
        imported = words[1]
        if words[0] == "from" and f"{imported}.{words[3]}" in after:
            imported = f"{imported}.{words[3]}"
        if imported in after and imported != plan.destination:
            after[plan.destination].add(imported)
    if plan.source_uses:
        after.setdefault(source, set()).add(plan.destination)
    for module, _, _ in plan.importers:
        after.setdefault(module.name, set()).add(plan.destination)
        if _only_imports_symbol(module, plan.source, plan.symbol):
            after[module.name].discard(source)
    return [cycle for cycle in find_cycles(after) if not any(set(cycle) <= component for component in before)]


def format_move(plan: MovePlan) -> str:
    """Human-readable report ending with the verdict line."""
    where = "exists" if plan.destination_exists else "will be created"
    lines = [
        f"move {plan.symbol}: {plan.source.name} -> {plan.destination}",
        f"  defined at {plan.source.display}:{getattr(plan.node, 'lineno', '?')}",
        f"  destination {plan.destination_path} ({where})",
        "destination will need:",
    ]
    lines.extend(f"  {statement}   (copied import)" for statement in plan.imports_to_copy)
    lines.extend(
        f"  from {plan.source.name} import {name}   (stays in the source)" for name in plan.from_source
    )
    if plan.already_there:
        lines.append(f"  (already bound there: {', '.join(plan.already_there)})")
    elif not plan.imports_to_copy and not plan.from_source:
        lines.append("  nothing: the symbol uses no other module-level name")
    lines.append(f"importers to update ({len(plan.importers)}):")
    lines.extend(f"  {module.display}:{lineno}  {text}" for module, lineno, text in plan.importers)
    for lineno in plan.destination_imports:
        lines.append(f"destination imports it from the source at line {lineno}: drop that import")
    if plan.source_uses:
        numbers = ", ".join(str(number) for number in plan.source_uses)
        lines.append(
            f"source still uses {plan.symbol} (lines {numbers}): it must import it from {plan.destination}"
        )
    if plan.in_source_all:
        lines.append(f"source __all__ lists {plan.symbol}: drop it there or keep a re-export")
    if plan.new_cycles:
        lines.append("new import cycles:")
        lines.extend("  " + " -> ".join(cycle) for cycle in plan.new_cycles)
    lines.append(f"verdict: {plan.verdict}")
    return "\n".join(lines)
