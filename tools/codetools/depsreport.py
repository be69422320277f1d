"""Text reports for ``deps``: graph, impact, depends, circular, coupling, layers."""

from __future__ import annotations

from collections import defaultdict

from codetools.importgraph import ModuleGraph, coupling, distances, find_cycles, layers


def format_graph(graph: ModuleGraph) -> str:
    """``module -> a, b`` for every module, then edge and cycle counts."""
    lines = []
    for module in graph.modules:
        targets = sorted(graph.imports[module])
        lines.append(f"{module} -> {', '.join(targets) if targets else '(nothing internal)'}")
    cycles = find_cycles(graph.imports)
    lines.append("")
    lines.append(f"{len(graph.modules)} modules, {len(graph.edges())} imports, {len(cycles)} cycle(s)")
    return "\n".join(lines)


def _by_distance(found: dict[str, int]) -> list[str]:
    grouped: dict[int, list[str]] = defaultdict(list)
    for module, hops in found.items():
        grouped[hops].append(module)
    lines = []
    for hops in sorted(grouped):
        label = "directly" if hops == 1 else f"{hops} hops away"
        lines.append(f"  {label}: {', '.join(sorted(grouped[hops]))}")
    return lines


def format_impact(graph: ModuleGraph, name: str) -> str:
    """Modules that import ``name`` directly or through others: what may break if it changes."""
    module = graph.find_module(name)
    found = distances(graph.importers(), module)
    lines = [f"impact of changing {module}: {len(found)} module(s) depend on it"]
    lines.extend(_by_distance(found) or ["  nothing imports it"])
    return "\n".join(lines)


def format_depends(graph: ModuleGraph, name: str) -> str:
    """Modules ``name`` imports, directly or transitively, and the external packages it uses itself."""
    module = graph.find_module(name)
    found = distances(graph.imports, module)
    lines = [f"{module} depends on {len(found)} internal module(s)"]
    lines.extend(_by_distance(found) or ["  no internal imports"])
    statements = sorted(
        line for imported in graph.imports[module] for line in graph.import_lines(module, imported)
    )
    lines.extend(f"  line {number}: {text}" for number, text in statements)
    external = sorted(graph.external[module])
    lines.append(f"  external: {', '.join(external) if external else '-'}")
    return "\n".join(lines)


def format_circular(graph: ModuleGraph) -> str:
    """Each import cycle, with the import statements that close it (the ones to break)."""
    cycles = find_cycles(graph.imports)
    if not cycles:
        return f"no import cycles among {len(graph.modules)} modules"
    lines = [f"{len(cycles)} import cycle(s):"]
    for cycle in cycles:
        lines.append("  " + " -> ".join(cycle))
        for importer, imported in zip(cycle, cycle[1:], strict=False):
            for number, text in graph.import_lines(importer, imported):
                lines.append(f"    {importer} line {number}: {text}")
    return "\n".join(lines)


def format_coupling(graph: ModuleGraph) -> str:
    """Afferent (Ca) and efferent (Ce) coupling and instability I = Ce / (Ca + Ce) per module.

    I near 0: many dependants, few dependencies (stable, costly to change);
    I near 1: depends on others, nothing depends on it (free to change).
    """
    rows = coupling(graph)
    width = max((len(row.module) for row in rows), default=6)
    lines = [f"{'module':<{width}}  {'Ca':>3}  {'Ce':>3}  {'I':>5}"]
    for row in rows:
        instability = "-" if row.instability is None else f"{row.instability:.2f}"
        lines.append(f"{row.module:<{width}}  {row.afferent:>3}  {row.efferent:>3}  {instability:>5}")
    lines.append("")
    lines.append("Ca: modules importing it; Ce: modules it imports; I = Ce/(Ca+Ce), 0 stable .. 1 unstable")
    return "\n".join(lines)


def format_layers(graph: ModuleGraph) -> str:
    """Suggested layering: each layer imports only from layers below; cycles are flagged."""
    stack = layers(graph.imports)
    lines = []
    for number, layer in enumerate(stack):
        title = "foundation, imports nothing internal" if number == 0 else f"imports layers 0..{number - 1}"
        lines.append(f"layer {number} ({title}):")
        for component in layer:
            if len(component) > 1:
                lines.append(f"  [cycle] {', '.join(component)}")
            else:
                lines.append(f"  {component[0]}")
    lines.append("")
    lines.append(f"{len(stack)} layer(s); a [cycle] must be broken before its modules can be layered")
    return "\n".join(lines)
