"""Name-level facts read from syntax trees: imports, ``__all__``, definitions, signatures.

All of this is static: a name is resolved through the module's own import
statements only, which is what a reader of the file sees too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

from codetools.sources import ParsedModule

FunctionNode = ast.FunctionDef | ast.AsyncFunctionDef
DefinitionNode = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef
MODULE_SCOPE = "<module>"


def is_package(module: ParsedModule) -> bool:
    return module.path.name == "__init__.py"


def resolve_relative(module: ParsedModule, level: int, target: str | None) -> str:
    """Absolute name for ``from <level dots><target> import ...`` written in ``module``."""
    if level == 0:
        return target or ""
    parts = module.name.split(".")
    if not is_package(module):
        parts = parts[:-1]
    if level > 1:
        parts = parts[: len(parts) - (level - 1)]
    if target:
        parts.append(target)
    return ".".join(parts)


def import_aliases(module: ParsedModule) -> dict[str, str]:
    """Local name -> dotted target for every import in the module (any nesting level)."""
    aliases: dict[str, str] = {}
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    aliases[alias.asname] = alias.name
                else:
                    top = alias.name.split(".")[0]
                    aliases[top] = top
        elif isinstance(node, ast.ImportFrom):
            base = resolve_relative(module, node.level, node.module)
            for alias in node.names:
                if alias.name != "*":
                    aliases[alias.asname or alias.name] = f"{base}.{alias.name}" if base else alias.name
    return aliases


def qualified_name(node: ast.AST, aliases: dict[str, str]) -> str | None:
    """Dotted name of an expression such as ``mp.get_context("spawn").Queue``.

    Call results appear as ``name()``: ``multiprocessing.get_context().Queue``.
    Returns None for expressions that are not names, attributes or calls.
    """
    if isinstance(node, ast.Name):
        return aliases.get(node.id, node.id)
    if isinstance(node, ast.Attribute):
        base = qualified_name(node.value, aliases)
        return None if base is None else f"{base}.{node.attr}"
    if isinstance(node, ast.Call):
        base = qualified_name(node.func, aliases)
        return None if base is None else f"{base}()"
    return None


def dunder_all(tree: ast.Module) -> list[str] | None:
    """Names listed in a module-level ``__all__`` (literal lists/tuples, ``+=`` included), or None."""
    names: list[str] | None = None
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign | ast.AugAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        if not any(isinstance(target, ast.Name) and target.id == "__all__" for target in targets):
            continue
        if isinstance(value, ast.List | ast.Tuple):
            literal = [
                elt.value
                for elt in value.elts
                if isinstance(elt, ast.Constant) and isinstance(elt.value, str)
            ]
            names = (names or []) + literal if isinstance(node, ast.AugAssign) else literal
    return names


def top_level_names(tree: ast.Module) -> dict[str, ast.AST]:
    """Names a module binds at top level (defs, classes, assignments, imports) -> binding node."""
    bound: dict[str, ast.AST] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound[node.name] = node
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for name in ast.walk(target):
                    if isinstance(name, ast.Name):
                        bound[name.id] = node
        elif isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                if alias.name != "*":
                    bound[alias.asname or alias.name.split(".")[0]] = node
        elif isinstance(node, ast.If | ast.Try):
            # `try: import x except ImportError: x = None` and `if TYPE_CHECKING:` blocks.
            nested = [*node.body, *node.orelse, *getattr(node, "finalbody", [])]
            for handler in getattr(node, "handlers", []):
                nested.extend(handler.body)
            bound.update(top_level_names(ast.Module(body=nested, type_ignores=[])))
    return bound


def walk_scoped(tree: ast.AST) -> Iterator[tuple[ast.AST, str]]:
    """Pre-order walk yielding ``(node, enclosing qualname)``; the module scope is ``<module>``."""
    stack: list[tuple[ast.AST, str]] = [(tree, MODULE_SCOPE)]
    while stack:
        node, scope = stack.pop()
        yield node, scope
        children = list(ast.iter_child_nodes(node))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            # Only the body runs inside the definition; bases, decorators and defaults run outside.
            inner = node.name if scope == MODULE_SCOPE else f"{scope}.{node.name}"
            body = {id(statement) for statement in node.body}
            stack.extend((child, inner if id(child) in body else scope) for child in reversed(children))
        else:
            stack.extend((child, scope) for child in reversed(children))


def function_signature(node: FunctionNode) -> str:
    """``async def name(args) -> ret`` exactly as annotated in the source."""
    prefix = "async def" if isinstance(node, ast.AsyncFunctionDef) else "def"
    returns = f" -> {ast.unparse(node.returns)}" if node.returns is not None else ""
    return f"{prefix} {node.name}({ast.unparse(node.args)}){returns}"


def class_signature(node: ast.ClassDef) -> str:
    """``class Name(Base, metaclass=M)``."""
    parts = [ast.unparse(base) for base in node.bases] + [ast.unparse(keyword) for keyword in node.keywords]
    return f"class {node.name}({', '.join(parts)})" if parts else f"class {node.name}"


def decorator_names(node: DefinitionNode) -> list[str]:
    """Decorators as written, without the ``@``: ``dataclass(frozen=True)``, ``app.get('/x')``."""
    return [ast.unparse(decorator) for decorator in node.decorator_list]


def has_decorator(node: DefinitionNode, *names: str) -> bool:
    """True when a decorator's final name is one of ``names`` (``dataclasses.dataclass(...)`` -> ``dataclass``)."""
    for decorator in node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        final = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", None)
        if final in names:
            return True
    return False


def base_names(node: ast.ClassDef) -> list[str]:
    """Final names of a class's bases: ``pydantic.BaseModel`` -> ``BaseModel``, ``Generic[T]`` -> ``Generic``."""
    names = []
    for base in node.bases:
        target = base.value if isinstance(base, ast.Subscript) else base
        if isinstance(target, ast.Attribute):
            names.append(target.attr)
        elif isinstance(target, ast.Name):
            names.append(target.id)
    return names


def member_kind(name: str) -> str:
    """``magic`` for dunders, ``private`` for a leading underscore, else ``public``."""
    if name.startswith("__") and name.endswith("__") and len(name) > 4:
        return "magic"
    return "private" if name.startswith("_") else "public"


def definitions(module: ParsedModule) -> Iterator[tuple[str, DefinitionNode]]:
    """Every function and class with its qualname (``Class.method``, ``outer.inner``)."""
    for node, scope in walk_scoped(module.tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            yield (node.name if scope == MODULE_SCOPE else f"{scope}.{node.name}"), node
