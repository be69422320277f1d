"""Logical projections of code without implementation: signatures, structure, public API, types.

Four renderers over parsed modules. ``signatures`` reads like a ``.pyi``
stub; ``structure`` is the file/class/method tree with line numbers; ``api``
shows each ``__all__`` name with its signature, following re-exports to the
defining module; ``types`` lists dataclasses, enums, NamedTuples,
TypedDicts, Protocols, pydantic models and type aliases with their fields.
"""

from __future__ import annotations

import ast
from pathlib import Path

from codetools.sources import ParsedModule, display_path
from codetools.symbols import (
    base_names,
    class_signature,
    decorator_names,
    dunder_all,
    function_signature,
    has_decorator,
    resolve_relative,
    top_level_names,
)

MODES = ("signatures", "structure", "api", "types")
_TYPE_BASES = {
    "Enum": "enum",
    "IntEnum": "enum",
    "StrEnum": "enum",
    "Flag": "enum",
    "IntFlag": "enum",
    "NamedTuple": "namedtuple",
    "TypedDict": "typeddict",
    "Protocol": "protocol",
    "BaseModel": "pydantic model",
    "BaseSettings": "pydantic settings",
}
_DATACLASS_DECORATORS = ("dataclass", "define", "frozen", "attrs")


def _stub_function(node: ast.FunctionDef | ast.AsyncFunctionDef, indent: str) -> list[str]:
    return [
        *(f"{indent}@{name}" for name in decorator_names(node)),
        f"{indent}{function_signature(node)}: ...",
    ]


def _field_line(node: ast.AnnAssign | ast.Assign, indent: str) -> str | None:
    """``name: type = default`` for an annotated field, ``NAME = value`` for a plain one."""
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        default = f" = {_short(node.value)}" if node.value is not None else ""
        return f"{indent}{node.target.id}: {ast.unparse(node.annotation)}{default}"
    if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
        return f"{indent}{node.targets[0].id} = {_short(node.value)}"
    return None


def _short(node: ast.AST, limit: int = 60) -> str:
    text = ast.unparse(node)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _stub_class(node: ast.ClassDef, indent: str = "") -> list[str]:
    lines = [*(f"{indent}@{name}" for name in decorator_names(node)), f"{indent}{class_signature(node)}:"]
    inner = indent + "    "
    for statement in node.body:
        if isinstance(statement, ast.AnnAssign):
            line = _field_line(statement, inner)
            if line:
                lines.append(line)
        elif isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef):
            lines.extend(_stub_function(statement, inner))
        elif isinstance(statement, ast.ClassDef):
            lines.extend(_stub_class(statement, inner))
    if len(lines) == len(node.decorator_list) + 1:
        lines.append(f"{inner}...")
    return lines


def render_signatures(modules: list[ParsedModule]) -> str:
    """Stub-like view: decorators, class headers, annotated fields and ``def`` lines only."""
    blocks = []
    for module in modules:
        lines = [f"# {module.display}  ({module.name})"]
        for node in module.tree.body:
            if isinstance(node, ast.ClassDef):
                lines.extend(_stub_class(node))
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines.extend(_stub_function(node, ""))
        if len(lines) > 1:
            blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def render_structure(modules: list[ParsedModule], root: Path) -> str:
    """File -> class -> method tree with line numbers, paths relative to ``root``."""
    base = root if root.is_dir() else root.parent
    lines = [f"{display_path(root)}/" if root.is_dir() else display_path(root)]
    for module in modules:
        lines.append(f"  {module.path.resolve().relative_to(base.resolve()).as_posix()}")
        for node in module.tree.body:
            if isinstance(node, ast.ClassDef):
                lines.append(f"    class {node.name}  L{node.lineno}")
                lines.extend(
                    f"      .{item.name}  L{item.lineno}"
                    for item in node.body
                    if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
                )
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines.append(f"    def {node.name}  L{node.lineno}")
    classes = sum(isinstance(n, ast.ClassDef) for m in modules for n in ast.walk(m.tree))
    functions = sum(
        isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) for m in modules for n in ast.walk(m.tree)
    )
    lines.append(f"\n{len(modules)} files, {classes} classes, {functions} functions and methods")
    return "\n".join(lines)


def _api_entry(name: str, module: ParsedModule, by_name: dict[str, ParsedModule], hops: int = 0) -> list[str]:
    node = top_level_names(module.tree).get(name)
    if isinstance(node, ast.ImportFrom) and hops < 5:
        source = resolve_relative(module, node.level, node.module)
        original = next((alias.name for alias in node.names if (alias.asname or alias.name) == name), name)
        if source in by_name:
            entry = _api_entry(original, by_name[source], by_name, hops + 1)
            return [f"{entry[0]}  (from {source})", *entry[1:]]
        return [f"{name}  (from {source}, outside the scanned files)"]
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        return [function_signature(node)]
    if isinstance(node, ast.ClassDef):
        members = []
        for item in node.body:
            if isinstance(item, ast.AnnAssign):
                members.append(_field_line(item, "    "))
            elif isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and (
                not item.name.startswith("_") or item.name == "__init__"
            ):
                members.append(f"    {function_signature(item)}")
        return [class_signature(node), *(member for member in members if member)]
    if isinstance(node, ast.AnnAssign | ast.Assign):
        return [_field_line(node, "") or name]
    return [f"{name}  (MISSING: listed in __all__ but never bound)"] if node is None else [name]


def render_api(modules: list[ParsedModule]) -> str:
    """Each module's ``__all__`` with the signature of every name."""
    by_name = {module.name: module for module in modules}
    blocks = []
    for module in modules:
        names = dunder_all(module.tree)
        if names is None:
            continue
        lines = [f"# {module.name}  ({module.display})"]
        for name in names:
            lines.extend(_api_entry(name, module, by_name))
        blocks.append("\n".join(lines))
    if not blocks:
        return "no module under this path defines __all__"
    return "\n\n".join(blocks)


def type_kind(node: ast.ClassDef) -> str | None:
    """``dataclass``/``dataclass(frozen)``/``enum``/... for type-definition classes, else None."""
    if has_decorator(node, *_DATACLASS_DECORATORS):
        frozen = any(
            isinstance(decorator, ast.Call)
            and any(k.arg == "frozen" and ast.unparse(k.value) == "True" for k in decorator.keywords)
            for decorator in node.decorator_list
        )
        return "dataclass(frozen)" if frozen else "dataclass"
    for base in base_names(node):
        if base in _TYPE_BASES:
            return _TYPE_BASES[base]
    return None


def _alias_line(node: ast.stmt) -> str | None:
    if isinstance(node, ast.AnnAssign) and ast.unparse(node.annotation).endswith("TypeAlias") and node.value:
        return f"alias {ast.unparse(node.target)} = {_short(node.value)}"
    type_alias = getattr(ast, "TypeAlias", None)  # the `type X = ...` statement, Python 3.12+
    if type_alias is not None and isinstance(node, type_alias):
        return f"alias {ast.unparse(node.name)} = {_short(node.value)}"
    if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) and len(node.targets) == 1:
        called = ast.unparse(node.value.func).split(".")[-1]
        if called in ("NewType", "TypeVar", "ParamSpec", "TypeVarTuple"):
            return f"{called} {ast.unparse(node.targets[0])} = {_short(node.value)}"
    return None


def render_types(modules: list[ParsedModule]) -> str:
    """Dataclasses, enums, NamedTuples, TypedDicts, Protocols, pydantic models, aliases, with fields."""
    blocks = []
    count = 0
    for module in modules:
        lines = [f"# {module.name}  ({module.display})"]
        for node in ast.walk(module.tree):
            if isinstance(node, ast.ClassDef) and (kind := type_kind(node)):
                count += 1
                lines.append(f"{kind} {class_signature(node)[6:]}  L{node.lineno}")
                for statement in node.body:
                    line = (
                        _field_line(statement, "    ")
                        if isinstance(statement, ast.AnnAssign | ast.Assign)
                        else None
                    )
                    if line:
                        lines.append(line)
        for statement in module.tree.body:
            line = _alias_line(statement)
            if line:
                count += 1
                lines.append(f"{line}  L{statement.lineno}")
        if len(lines) > 1:
            blocks.append("\n".join(lines))
    return "\n\n".join([*blocks, f"{count} type definition(s)"])


def render(mode: str, modules: list[ParsedModule], root: Path) -> str:
    """Dispatch on ``mode`` (one of ``MODES``)."""
    if mode == "signatures":
        return render_signatures(modules)
    if mode == "structure":
        return render_structure(modules, root)
    if mode == "api":
        return render_api(modules)
    if mode == "types":
        return render_types(modules)
    raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
