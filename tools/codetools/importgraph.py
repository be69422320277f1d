"""Import graphs of Python packages, built by grimp, and the algorithms over them.

grimp reads the import statements of whole top-level packages (it needs the
folder above them on ``sys.path`` but imports nothing). A path that points
inside a package is analysed with its top-level package and then narrowed to
the modules under that path, so edges to the rest of the package are dropped.
Edges point from importer to imported module.
"""

from __future__ import annotations

import importlib
import sys
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import grimp
from grimp.exceptions import GrimpException

from codetools import ToolError
from codetools.sources import is_skipped_dir


@dataclass(frozen=True)
class PackageScope:
    """Which packages grimp must read (``packages`` under ``search_root``) and which modules to keep."""

    search_root: Path
    packages: tuple[str, ...]
    prefix: str | None = None

    def contains(self, module: str) -> bool:
        if module.split(".")[0] not in self.packages:
            return False
        return self.prefix is None or module == self.prefix or module.startswith(self.prefix + ".")


def resolve_scope(path: Path) -> PackageScope:
    """Work out the top-level package(s) behind ``path`` (a package, a module, or a folder of packages)."""
    path = path.resolve()
    if not path.exists():
        raise FileNotFoundError(f"no such file or folder: {path}")
    package_dir = path if path.is_dir() else path.parent
    if not (package_dir / "__init__.py").exists():
        if path.is_file():
            raise ToolError(f"{path} is not inside a package (no __init__.py beside it)")
        packages = tuple(
            sorted(
                child.name
                for child in path.iterdir()
                if child.is_dir() and (child / "__init__.py").exists() and not is_skipped_dir(child)
            )
        )
        if not packages:
            raise ToolError(f"{path} holds no Python package (no sub-folder with an __init__.py)")
        return PackageScope(search_root=path, packages=packages)
    parts = [] if path.is_dir() else [path.stem]
    folder = package_dir
    while (folder / "__init__.py").exists():
        parts.insert(0, folder.name)
        folder = folder.parent
    if path.name == "__init__.py":
        parts.pop()
    prefix = ".".join(parts)
    return PackageScope(search_root=folder, packages=(parts[0],), prefix=None if len(parts) == 1 else prefix)


@contextmanager
def _on_sys_path(folder: Path) -> Iterator[None]:
    sys.path.insert(0, str(folder))
    importlib.invalidate_caches()
    try:
        yield
    finally:
        sys.path.remove(str(folder))


@dataclass
class ModuleGraph:
    """Internal modules in scope, their internal imports, and the external packages each uses."""

    scope: PackageScope
    imports: dict[str, set[str]]
    external: dict[str, set[str]]
    grimp_graph: grimp.ImportGraph = field(repr=False)

    @property
    def modules(self) -> list[str]:
        return sorted(self.imports)

    def importers(self) -> dict[str, set[str]]:
        """Reverse edges: module -> modules in scope that import it."""
        reverse: dict[str, set[str]] = {module: set() for module in self.imports}
        for importer, imported in self.edges():
            reverse[imported].add(importer)
        return reverse

    def edges(self) -> list[tuple[str, str]]:
        return sorted(
            (importer, imported) for importer, targets in self.imports.items() for imported in targets
        )

    def import_lines(self, importer: str, imported: str) -> list[tuple[int, str]]:
        """``(line_number, line_contents)`` of each statement by which ``importer`` imports ``imported``."""
        details = self.grimp_graph.get_import_details(importer=importer, imported=imported)
        return sorted((detail["line_number"], detail["line_contents"]) for detail in details)

    def find_module(self, name: str) -> str:
        """Resolve a full or short module name (``pipeline`` -> ``rvc.processing.pipeline``)."""
        if name in self.imports:
            return name
        candidates = sorted(module for module in self.imports if module.endswith("." + name))
        if len(candidates) == 1:
            return candidates[0]
        if not candidates:
            raise ToolError(f"no module named {name!r} in {', '.join(self.scope.packages)}")
        raise ToolError(f"{name!r} is ambiguous: {', '.join(candidates)}")


def build_module_graph(path: Path) -> ModuleGraph:
    """Read the package(s) behind ``path`` with grimp and keep the modules in scope."""
    scope = resolve_scope(path)
    with _on_sys_path(scope.search_root):
        try:
            graph = grimp.build_graph(*scope.packages, include_external_packages=True, cache_dir=None)
        except GrimpException as exc:
            raise ToolError(
                f"grimp could not build the import graph of {', '.join(scope.packages)}: {exc}"
            ) from exc
    imports: dict[str, set[str]] = {}
    external: dict[str, set[str]] = {}
    for module in graph.modules:
        if not scope.contains(module):
            continue
        targets = graph.find_modules_directly_imported_by(module)
        imports[module] = {target for target in targets if scope.contains(target)}
        external[module] = {
            target
            for target in targets
            if target.split(".")[0] not in scope.packages and target != "__future__"
        }
    return ModuleGraph(scope=scope, imports=imports, external=external, grimp_graph=graph)


def strongly_connected_components(imports: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative. Components come out dependencies-first."""
    index: dict[str, int] = {}
    lowlink: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    for start in sorted(imports):
        if start in index:
            continue
        work = [(start, iter(sorted(imports[start])))]
        index[start] = lowlink[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = lowlink[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(imports.get(child, ())))))
                elif child in on_stack:
                    lowlink[node] = min(lowlink[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                lowlink[parent] = min(lowlink[parent], lowlink[node])
            if lowlink[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
    return components


def shortest_path(
    imports: dict[str, set[str]], source: str, target: str, allowed: set[str]
) -> list[str] | None:
    """Breadth-first path ``source -> ... -> target`` through ``allowed`` modules (source != target allowed)."""
    parents: dict[str, str] = {}
    queue = deque([source])
    seen = {source}
    while queue:
        node = queue.popleft()
        for child in sorted(imports.get(node, ())):
            if child == target:
                path = [child, node]
                while path[-1] != source:
                    path.append(parents[path[-1]])
                return path[::-1]
            if child in allowed and child not in seen:
                seen.add(child)
                parents[child] = node
                queue.append(child)
    return None


def find_cycles(imports: dict[str, set[str]]) -> list[list[str]]:
    """One shortest cycle per tangled component, e.g. ``[a, b, a]``; self-imports included."""
    cycles = []
    for component in strongly_connected_components(imports):
        members = set(component)
        if len(component) == 1 and component[0] not in imports.get(component[0], ()):
            continue
        best: list[str] | None = None
        for module in component:
            path = shortest_path(imports, module, module, members)
            if path is not None and (best is None or len(path) < len(best)):
                best = path
        if best is not None:
            cycles.append(best)
    return sorted(cycles, key=lambda cycle: (len(cycle), cycle))


def distances(edges: dict[str, set[str]], start: str) -> dict[str, int]:
    """Hop count from ``start`` to every module reachable along ``edges`` (start excluded)."""
    found: dict[str, int] = {}
    queue = deque([(start, 0)])
    while queue:
        node, hops = queue.popleft()
        for child in edges.get(node, ()):
            if child != start and child not in found:
                found[child] = hops + 1
                queue.append((child, hops + 1))
    return found


@dataclass(frozen=True)
class Coupling:
    """Robert Martin's package metrics for one module: Ca, Ce and instability Ce / (Ca + Ce)."""

    module: str
    afferent: int
    efferent: int

    @property
    def instability(self) -> float | None:
        total = self.afferent + self.efferent
        return None if total == 0 else self.efferent / total


def coupling(graph: ModuleGraph) -> list[Coupling]:
    """Coupling of every module in scope, most unstable first."""
    importers = graph.importers()
    rows = [Coupling(module, len(importers[module]), len(graph.imports[module])) for module in graph.modules]
    return sorted(
        rows, key=lambda row: (-(row.instability if row.instability is not None else -1.0), row.module)
    )


def layers(imports: dict[str, set[str]]) -> list[list[list[str]]]:
    """Group modules into layers: layer 0 imports nothing internal, layer n only layers below n.

    Each layer is a list of components; a component with several modules is an
    import cycle that has to live in one layer.
    """
    layer_of: dict[str, int] = {}
    result: list[list[list[str]]] = []
    for component in strongly_connected_components(imports):
        members = set(component)
        below = [layer_of[dep] for module in component for dep in imports[module] if dep not in members]
        layer = 1 + max(below) if below else 0
        for module in component:
            layer_of[module] = layer
        while len(result) <= layer:
            result.append([])
        result[layer].append(component)
    return [sorted(layer) for layer in result]
