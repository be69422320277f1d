"""Cyclomatic complexity per function, measured by radon, with an ``ast`` breakdown on demand.

radon counts 1 + one per decision (if/elif, loops, except, boolean operator,
conditional expression, comprehension ``for``/``if``, assert, match case).
Ranks follow radon: A 1-5, B 6-10, C 11-20, D 21-30, E 31-40, F 41+.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from radon.complexity import cc_rank, cc_visit
from radon.metrics import mi_visit
from radon.visitors import Class, Function

from codetools import ToolError
from codetools.sources import ParsedModule, parse_tree


@dataclass(frozen=True)
class FunctionComplexity:
    """One function or method: radon's score plus where it is."""

    module: ParsedModule
    qualname: str
    lineno: int
    endline: int
    complexity: int

    @property
    def rank(self) -> str:
        return cc_rank(self.complexity)

    @property
    def location(self) -> str:
        return f"{self.module.display}:{self.lineno}"

    @property
    def length(self) -> int:
        return self.endline - self.lineno + 1


def _flatten(blocks: list[Function | Class], prefix: str = "") -> list[tuple[str, Function]]:
    functions: list[tuple[str, Function]] = []
    for block in blocks:
        if isinstance(block, Class):
            functions.extend(_flatten(block.methods, f"{prefix}{block.name}."))
            functions.extend(_flatten(block.inner_classes, f"{prefix}{block.name}."))
        else:
            name = f"{prefix}{block.name}"
            functions.append((name, block))
            functions.extend(_flatten(block.closures, f"{name}."))
    return functions


def measure(modules: list[ParsedModule]) -> list[FunctionComplexity]:
    """Complexity of every function, method and closure in the modules."""
    results = []
    for module in modules:
        # radon's top level lists methods twice (inside their class and flat); keep the class view.
        blocks = [block for block in cc_visit(module.source) if not getattr(block, "is_method", False)]
        for qualname, block in _flatten(blocks):
            results.append(
                FunctionComplexity(module, qualname, block.lineno, block.endline, block.complexity)
            )
    return results


def _table(rows: list[FunctionComplexity]) -> list[str]:
    width = max((len(row.qualname) for row in rows), default=8)
    lines = [f"{'CC':>3}  rank  {'function':<{width}}  lines  location"]
    lines.extend(
        f"{row.complexity:>3}  {row.rank:^4}  {row.qualname:<{width}}  {row.length:>5}  {row.location}"
        for row in rows
    )
    return lines


def _summary(rows: list[FunctionComplexity]) -> str:
    files = len({row.module.path for row in rows})
    average = sum(row.complexity for row in rows) / len(rows) if rows else 0.0
    return f"{len(rows)} functions in {files} file(s), average complexity {average:.1f}"


def format_top(path: Path, top: int) -> str:
    rows = sorted(measure(parse_tree(path)), key=lambda row: (-row.complexity, row.location))
    return "\n".join([*_table(rows[:top]), "", _summary(rows)])


def format_threshold(path: Path, threshold: int) -> str:
    rows = sorted(measure(parse_tree(path)), key=lambda row: (-row.complexity, row.location))
    above = [row for row in rows if row.complexity >= threshold]
    head = f"{len(above)} function(s) with complexity >= {threshold}"
    return "\n".join([head, *(_table(above) if above else []), "", _summary(rows)])


def format_file(path: Path) -> str:
    """Every function of one file in source order, plus radon's maintainability index."""
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    modules = parse_tree(path)
    rows = sorted(measure(modules), key=lambda row: row.lineno)
    index = mi_visit(modules[0].source, multi=True) if modules else 0.0
    return "\n".join(
        [*_table(rows), "", _summary(rows), f"maintainability index {index:.1f} (0-100, higher is better)"]
    )


def decision_breakdown(node: ast.AST) -> dict[str, int]:
    """Counts of the constructs that make a function complex, and its deepest nesting."""
    counts = {
        "if": 0,
        "loops": 0,
        "except": 0,
        "boolean ops": 0,
        "ternaries": 0,
        "comprehensions": 0,
        "returns": 0,
    }
    for child in ast.walk(node):
        if isinstance(child, ast.If):
            counts["if"] += 1
        elif isinstance(child, ast.For | ast.AsyncFor | ast.While):
            counts["loops"] += 1
        elif isinstance(child, ast.ExceptHandler):
            counts["except"] += 1
        elif isinstance(child, ast.BoolOp):
            counts["boolean ops"] += len(child.values) - 1
        elif isinstance(child, ast.IfExp):
            counts["ternaries"] += 1
        elif isinstance(child, ast.comprehension):
            counts["comprehensions"] += 1
        elif isinstance(child, ast.Return):
            counts["returns"] += 1
    counts["max nesting"] = _nesting(node)
    return counts


_NESTING = (ast.If, ast.For, ast.AsyncFor, ast.While, ast.Try, ast.With, ast.AsyncWith, ast.Match)


def _nesting(node: ast.AST, depth: int = 0) -> int:
    deepest = depth
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
            continue
        inner = depth + 1 if isinstance(child, _NESTING) else depth
        deepest = max(deepest, _nesting(child, inner))
    return deepest


def _node_at(module: ParsedModule, lineno: int) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    for node in ast.walk(module.tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.lineno == lineno:
            return node
    return None


def format_function(path: Path, name: str) -> str:
    """Details for each function whose name (or ``Class.method`` tail) is ``name``."""
    rows = [
        row for row in measure(parse_tree(path)) if row.qualname == name or row.qualname.endswith("." + name)
    ]
    if not rows:
        raise ToolError(f"no function named {name!r} under {path}")
    lines = []
    for row in sorted(rows, key=lambda row: row.location):
        node = _node_at(row.module, row.lineno)
        lines.append(f"{row.qualname}  {row.location}")
        lines.append(f"  complexity {row.complexity} (rank {row.rank}), {row.length} lines")
        if node is not None:
            arguments = node.args
            count = len(arguments.posonlyargs + arguments.args + arguments.kwonlyargs)
            count += int(arguments.vararg is not None) + int(arguments.kwarg is not None)
            breakdown = ", ".join(f"{key} {value}" for key, value in decision_breakdown(node).items())
            lines.append(f"  parameters {count}; {breakdown}")
        if row.complexity > 10:
            lines.append("  hint: above 10; split the branches into named helpers")
    return "\n".join(lines)
