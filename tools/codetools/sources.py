"""Finding, reading and parsing the source files a tool is pointed at.

Every tool walks the same way: deterministic (sorted) order, symlinks not
followed, and version-control folders, virtual environments and caches never
entered, so a replace can not corrupt ``.git`` or an installed package.
"""

from __future__ import annotations

import ast
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

SKIPPED_DIR_NAMES = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        ".bzr",
        "__pycache__",
        "node_modules",
        ".tox",
        ".nox",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".ropeproject",
        ".grimp_cache",
        ".venv",
        "venv",
        ".eggs",
        "site-packages",
    }
)
# A folder holding one of these is an environment (virtualenv / conda), whatever its name.
_ENVIRONMENT_MARKERS = ("pyvenv.cfg", "conda-meta")
_BINARY_SNIFF_BYTES = 8192


def is_skipped_dir(directory: Path) -> bool:
    """True for folders no tool may enter: VCS metadata, environments, caches."""
    name = directory.name
    if name in SKIPPED_DIR_NAMES or name.endswith(".egg-info"):
        return True
    return any((directory / marker).exists() for marker in _ENVIRONMENT_MARKERS)


def iter_files(root: Path, extensions: Iterable[str] | None = None) -> Iterator[Path]:
    """Yield files under ``root`` (or ``root`` itself) in sorted order.

    ``extensions`` are matched without the dot (``["py", "md"]``); None keeps
    every file. Skipped folders are pruned, symlinks are not followed.
    """
    suffixes = (
        None if extensions is None else {"." + ext.strip().lstrip(".") for ext in extensions if ext.strip()}
    )

    def wanted(path: Path) -> bool:
        return suffixes is None or path.suffix in suffixes

    if root.is_file():
        if wanted(root):
            yield root
        return
    if not root.is_dir():
        raise FileNotFoundError(f"no such file or folder: {root}")
    for current, dirnames, filenames in os.walk(root, followlinks=False):
        current_path = Path(current)
        dirnames[:] = sorted(d for d in dirnames if not is_skipped_dir(current_path / d))
        for filename in sorted(filenames):
            path = current_path / filename
            if not path.is_symlink() and wanted(path):
                yield path


def read_text_file(path: Path) -> str | None:
    """The file's text (UTF-8, newlines untouched), or None for binary/undecodable files."""
    data = path.read_bytes()
    if b"\0" in data[:_BINARY_SNIFF_BYTES]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def module_name_for(path: Path) -> str:
    """Dotted module name, found by walking up through folders that hold ``__init__.py``."""
    path = path.resolve()
    parts = [] if path.name == "__init__.py" else [path.stem]
    folder = path.parent
    while (folder / "__init__.py").exists():
        parts.insert(0, folder.name)
        folder = folder.parent
    return ".".join(parts) if parts else path.parent.name


def display_path(path: Path) -> str:
    """Path relative to the working directory when it lies below it, else absolute."""
    resolved = path.resolve()
    try:
        return resolved.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return resolved.as_posix()


@dataclass(frozen=True)
class ParsedModule:
    """One parsed Python file: where it is, its dotted name, text and syntax tree."""

    path: Path
    name: str
    source: str
    tree: ast.Module

    @property
    def display(self) -> str:
        return display_path(self.path)

    def line(self, lineno: int) -> str:
        """Source line ``lineno`` (1-based) without its newline, stripped."""
        lines = self.source.splitlines()
        return lines[lineno - 1].strip() if 0 < lineno <= len(lines) else ""


def parse_file(path: Path) -> ParsedModule | None:
    """Parse one file; a binary or syntactically broken file is logged and skipped."""
    source = read_text_file(path)
    if source is None:
        logger.warning("skipping %s: not UTF-8 text", path)
        return None
    try:
        tree = ast.parse(source, filename=str(path))
    except SyntaxError as exc:
        logger.warning("skipping %s: %s", path, exc)
        return None
    return ParsedModule(path=path, name=module_name_for(path), source=source, tree=tree)


def parse_tree(root: Path) -> list[ParsedModule]:
    """Every parseable ``.py`` file under ``root`` (a folder or a single file)."""
    modules = []
    for path in iter_files(root, ["py"]):
        parsed = parse_file(path)
        if parsed is not None:
            modules.append(parsed)
    return modules
