"""Classes as a reader sees them: hierarchy, method kinds, and instance-state data flow.

Bases are matched by their final name (``pkg.Base`` -> ``Base``) against the
classes in the scanned files, which is enough to draw a tree inside one
project; bases from outside (``Exception``, ``BaseModel``) are shown as roots'
parents but not expanded.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from dataclasses import dataclass, field

from codetools import ToolError
from codetools.sources import ParsedModule
from codetools.symbols import MODULE_SCOPE, base_names, has_decorator, member_kind, walk_scoped

# Calls on an attribute that change the object it holds (``self.items.append(x)``).
MUTATING_METHODS = frozenset(
    {
        "append",
        "extend",
        "insert",
        "pop",
        "popitem",
        "remove",
        "clear",
        "update",
        "add",
        "discard",
        "setdefault",
        "sort",
        "reverse",
        "appendleft",
        "extendleft",
        "popleft",
        "put",
        "put_nowait",
        "fill_",
        "zero_",
        "copy_",
        "add_",
        "mul_",
        "set",
        "write",
    }
)
_INIT_METHODS = frozenset({"__init__", "__post_init__", "__new__", "setUp"})


@dataclass(frozen=True)
class ClassInfo:
    """One class definition and where it lives."""

    module: ParsedModule
    qualname: str
    node: ast.ClassDef

    @property
    def name(self) -> str:
        return self.node.name

    @property
    def location(self) -> str:
        return f"{self.module.display}:{self.node.lineno}"

    def methods(self) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
        return [node for node in self.node.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)]

    def methods_by_kind(self) -> dict[str, list[str]]:
        grouped: dict[str, list[str]] = {"public": [], "private": [], "magic": []}
        for method in self.methods():
            grouped[member_kind(method.name)].append(method.name)
        return grouped


def collect_classes(modules: list[ParsedModule]) -> list[ClassInfo]:
    """Every class (nested ones included) in the given modules, in file order."""
    found = []
    for module in modules:
        for node, scope in walk_scoped(module.tree):
            if isinstance(node, ast.ClassDef):
                qualname = node.name if scope == MODULE_SCOPE else f"{scope}.{node.name}"
                found.append(ClassInfo(module=module, qualname=qualname, node=node))
    return found


def hierarchy(classes: list[ClassInfo]) -> list[str]:
    """Indented inheritance tree; a class with a known base appears under it (under each, if several)."""
    known = {info.name for info in classes}
    children: dict[str, list[ClassInfo]] = defaultdict(list)
    roots = []
    for info in classes:
        parents = [base for base in base_names(info.node) if base in known and base != info.name]
        for parent in parents:
            children[parent].append(info)
        if not parents:
            roots.append(info)
    lines: list[str] = []

    def draw(info: ClassInfo, depth: int, trail: frozenset[str]) -> None:
        outside = [base for base in base_names(info.node) if base not in known]
        suffix = f"  ({', '.join(outside)})" if outside and depth == 0 else ""
        lines.append(f"{'  ' * depth}{info.name}{suffix}  {info.location}")
        for child in children.get(info.name, []):
            if child.name not in trail:
                draw(child, depth + 1, trail | {child.name})

    for root in roots:
        draw(root, 0, frozenset({root.name}))
    return lines


def format_classes(modules: list[ParsedModule]) -> str:
    """Hierarchy tree, then each class with its bases and methods split public/private/magic."""
    classes = collect_classes(modules)
    lines = ["Hierarchy:", *("  " + line for line in hierarchy(classes)), "", "Classes:"]
    for info in classes:
        bases = ", ".join(ast.unparse(base) for base in info.node.bases) or "-"
        lines.append(f"  {info.module.name}.{info.qualname}  {info.location}  bases: {bases}")
        for kind, names in info.methods_by_kind().items():
            if names:
                lines.append(f"    {kind:<8} {', '.join(names)}")
    lines.append(f"\n{len(classes)} classes in {len({info.module.path for info in classes})} files")
    return "\n".join(lines)


@dataclass
class AttributeFlow:
    """Which methods initialise, write and read one ``self.<name>`` attribute."""

    name: str
    initialised_in: set[str] = field(default_factory=set)
    written_by: set[str] = field(default_factory=set)
    read_by: set[str] = field(default_factory=set)


def _self_attribute(node: ast.AST, self_name: str) -> str | None:
    """``self.x`` (possibly under subscripts, ``self.x[k]``) -> ``x``."""
    while isinstance(node, ast.Subscript):
        node = node.value
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == self_name:
        return node.attr
    return None


def _method_accesses(method: ast.FunctionDef | ast.AsyncFunctionDef) -> tuple[set[str], set[str]]:
    """(attributes written, attributes read) through the method's first parameter."""
    params = method.args.posonlyargs + method.args.args
    if not params or has_decorator(method, "staticmethod"):
        return set(), set()
    self_name = params[0].arg
    written: set[str] = set()
    write_nodes: set[int] = set()
    for node in ast.walk(method):
        targets: list[ast.AST] = []
        if isinstance(node, ast.Assign):
            targets = list(node.targets)
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        elif isinstance(node, ast.Delete):
            targets = list(node.targets)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in MUTATING_METHODS:
                targets = [node.func.value]
        for target in targets:
            for part in ast.walk(target):
                attribute = _self_attribute(part, self_name)
                if attribute is not None and not isinstance(part, ast.Subscript):
                    written.add(attribute)
                    write_nodes.add(id(part))
    read = {
        node.attr
        for node in ast.walk(method)
        if isinstance(node, ast.Attribute)
        and id(node) not in write_nodes
        and _self_attribute(node, self_name) == node.attr
        and not isinstance(node.ctx, ast.Store | ast.Del)
    }
    return written, read


def _find_class(classes: list[ClassInfo], name: str) -> ClassInfo:
    matches = [
        info for info in classes if name in (info.name, info.qualname, f"{info.module.name}.{info.qualname}")
    ]
    if not matches:
        raise ToolError(f"no class named {name!r} in the scanned files")
    if len(matches) > 1:
        raise ToolError(
            f"{name!r} is ambiguous: " + ", ".join(f"{m.module.name}.{m.qualname}" for m in matches)
        )
    return matches[0]


def resolved_methods(
    info: ClassInfo, classes: list[ClassInfo]
) -> list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """``(Owner.method, node)`` for the class's own and inherited methods, overrides winning."""
    by_name = {other.name: other for other in classes}
    seen: set[str] = set()
    resolved = []
    queue, visited = [info], set()
    while queue:
        current = queue.pop(0)
        if current.name in visited:
            continue
        visited.add(current.name)
        for method in current.methods():
            if method.name not in seen:
                seen.add(method.name)
                owner = "" if current is info else f"{current.name}."
                resolved.append((owner + method.name, method))
        queue.extend(by_name[base] for base in base_names(current.node) if base in by_name)
    return resolved


def dataflow(info: ClassInfo, classes: list[ClassInfo]) -> dict[str, AttributeFlow]:
    """Instance attributes of a class (inherited methods included) and who touches them."""
    flows: dict[str, AttributeFlow] = {}
    for label, method in resolved_methods(info, classes):
        written, read = _method_accesses(method)
        for name in written | read:
            flows.setdefault(name, AttributeFlow(name))
        initialiser = method.name in _INIT_METHODS
        for name in written:
            (flows[name].initialised_in if initialiser else flows[name].written_by).add(label)
        for name in read:
            flows[name].read_by.add(label)
    method_names = {label.rsplit(".", 1)[-1] for label, _ in resolved_methods(info, classes)}
    return {
        name: flow for name, flow in sorted(flows.items()) if name not in method_names or flow.initialised_in
    }


def format_dataflow(modules: list[ParsedModule], class_name: str) -> str:
    """Report of a class's state: class attributes, instance attributes, mutating vs read-only methods."""
    classes = collect_classes(modules)
    info = _find_class(classes, class_name)
    bases = ", ".join(ast.unparse(base) for base in info.node.bases) or "-"
    class_attributes = sorted(
        target.id
        for statement in info.node.body
        if isinstance(statement, ast.Assign | ast.AnnAssign)
        for target in (statement.targets if isinstance(statement, ast.Assign) else [statement.target])
        if isinstance(target, ast.Name)
    )
    flows = dataflow(info, classes)
    lines = [
        f"class {info.module.name}.{info.qualname}  {info.location}  bases: {bases}",
        f"class attributes: {', '.join(class_attributes) or '-'}",
        "instance attributes:",
    ]
    width = max((len(name) for name in flows), default=0)
    for flow in flows.values():
        lines.append(
            f"  {flow.name:<{width}}  init: {_join(flow.initialised_in)}  "
            f"written by: {_join(flow.written_by)}  read by: {_join(flow.read_by)}"
        )
    mutators: dict[str, list[str]] = defaultdict(list)
    for flow in flows.values():
        for method in flow.written_by:
            mutators[method].append(flow.name)
    labels = [label for label, _ in resolved_methods(info, classes)]
    changing = [f"{label} ({', '.join(sorted(mutators[label]))})" for label in labels if label in mutators]
    lines.append(f"methods that mutate state: {'; '.join(changing) or '-'}")
    others = [
        label for label in labels if label not in mutators and label.rsplit(".", 1)[-1] not in _INIT_METHODS
    ]
    lines.append(f"methods that leave state alone: {', '.join(others) or '-'}")
    return "\n".join(lines)


def _join(names: set[str]) -> str:
    return ", ".join(sorted(names)) or "-"
