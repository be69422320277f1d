"""Look-alike code: structurally similar functions and copy-pasted blocks of lines.

``similar_functions`` compares the sequence of syntax-node types of each
function body (names and constants ignored), so a copy with renamed
variables still matches; ``duplicate_blocks`` finds runs of identical
normalised lines (comments, blank lines, docstrings and imports dropped), the
classic copy-paste detector.
"""

from __future__ import annotations

import ast
import difflib
from collections import Counter, defaultdict
from dataclasses import dataclass

from codetools.sources import ParsedModule
from codetools.symbols import definitions


@dataclass(frozen=True)
class FunctionShape:
    module: ParsedModule
    qualname: str
    lineno: int
    shape: tuple[str, ...]

    @property
    def location(self) -> str:
        return f"{self.module.display}:{self.lineno}"


def function_shapes(modules: list[ParsedModule], min_nodes: int) -> list[FunctionShape]:
    """Node-type sequences of every function body with at least ``min_nodes`` nodes."""
    shapes = []
    for module in modules:
        for qualname, node in definitions(module):
            if isinstance(node, ast.ClassDef):
                continue
            shape = tuple(
                type(child).__name__
                for statement in node.body
                for child in ast.walk(statement)
                if not isinstance(child, ast.expr_context)  # Load/Store add length, not information
            )
            if len(shape) >= min_nodes:
                shapes.append(FunctionShape(module, qualname, node.lineno, shape))
    return shapes


def similar_functions(
    modules: list[ParsedModule], threshold: float = 0.85, min_nodes: int = 30
) -> list[tuple[FunctionShape, FunctionShape, float]]:
    """Pairs of functions whose body shapes match at least ``threshold`` (0..1), best first."""
    shapes = sorted(function_shapes(modules, min_nodes), key=lambda item: len(item.shape))
    histograms = [Counter(item.shape) for item in shapes]
    pairs = []
    for index, first in enumerate(shapes):
        matcher = difflib.SequenceMatcher(None, autojunk=False)
        matcher.set_seq2(first.shape)
        for offset, second in enumerate(shapes[index + 1 :], start=index + 1):
            total = len(first.shape) + len(second.shape)
            if 2 * len(first.shape) / total < threshold:
                break  # sorted by length: every later one is even longer
            # Matched nodes can not exceed the shared node-type counts: a cheap upper bound on the ratio.
            if 2 * (histograms[index] & histograms[offset]).total() / total < threshold:
                continue
            matcher.set_seq1(second.shape)
            ratio = matcher.ratio()
            if ratio >= threshold:
                pairs.append((first, second, ratio))
    return sorted(pairs, key=lambda pair: (-pair[2], pair[0].location, pair[1].location))


def _ignored_lines(tree: ast.Module) -> set[int]:
    """Line numbers of docstrings and import statements."""
    ignored: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            ignored.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
        body = getattr(node, "body", None)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and body:
            first = body[0]
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                ignored.update(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    return ignored


def normalised_lines(module: ParsedModule) -> list[tuple[str, int]]:
    """``(stripped text, line number)`` for the lines that count as code."""
    ignored = _ignored_lines(module.tree)
    kept = []
    for number, line in enumerate(module.source.splitlines(), start=1):
        text = line.strip()
        if text and not text.startswith("#") and number not in ignored:
            kept.append((text, number))
    return kept


@dataclass(frozen=True)
class DuplicateBlock:
    """The same run of ``length`` code lines at several places: ``(module, first line, last line)``."""

    length: int
    places: tuple[tuple[ParsedModule, int, int], ...]


def duplicate_blocks(modules: list[ParsedModule], min_lines: int = 6) -> list[DuplicateBlock]:
    """Maximal runs of at least ``min_lines`` identical code lines found in two or more places."""
    files = [normalised_lines(module) for module in modules]
    windows: dict[tuple[str, ...], list[tuple[int, int]]] = defaultdict(list)
    for file_index, lines in enumerate(files):
        texts = [text for text, _ in lines]
        for start in range(len(lines) - min_lines + 1):
            windows[tuple(texts[start : start + min_lines])].append((file_index, start))
    blocks = []
    for places in windows.values():
        places = _non_overlapping(places, min_lines)
        if len(places) < 2 or _extends_earlier(files, places):
            continue
        length = min_lines
        while all(
            start + length < len(files[f])
            and files[f][start + length][0] == files[places[0][0]][places[0][1] + length][0]
            for f, start in places
        ):
            length += 1
        blocks.append(
            DuplicateBlock(
                length,
                tuple(
                    (modules[f], files[f][start][1], files[f][start + length - 1][1]) for f, start in places
                ),
            )
        )
    return sorted(blocks, key=lambda block: (-block.length, block.places[0][0].display, block.places[0][1]))


def _non_overlapping(places: list[tuple[int, int]], width: int) -> list[tuple[int, int]]:
    kept: list[tuple[int, int]] = []
    for file_index, start in places:
        if not any(f == file_index and abs(s - start) < width for f, s in kept):
            kept.append((file_index, start))
    return kept


def _extends_earlier(files: list[list[tuple[str, int]]], places: list[tuple[int, int]]) -> bool:
    """True when every place is preceded by the same line, so a longer block already covers it."""
    if any(start == 0 for _, start in places):
        return False
    previous = {files[f][start - 1][0] for f, start in places}
    return len(previous) == 1
