"""Project-wide regex find and replace with JavaScript-style replacement strings.

The seed tool was ``node replace.js``, so replacements keep its syntax: ``$1``
(or ``${1}``) for a numbered group, ``$<name>`` for a named group, ``$&`` for
the whole match and ``$$`` for a literal dollar. Backslashes in the
replacement are literal, as in JavaScript. Patterns use Python's ``re`` with
MULTILINE, so ``^`` and ``$`` anchor at line boundaries.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from codetools.sources import display_path, iter_files, read_text_file

_TOKEN = re.compile(r"\$(?:(\$)|(&)|\{(\d+)\}|<([A-Za-z_]\w*)>|(\d{1,2}))")


def compile_replacement(pattern: re.Pattern[str], replacement: str) -> Callable[[re.Match[str]], str]:
    """Turn a ``$1``-style replacement into a function for ``pattern.sub``.

    Raises ValueError naming a group the pattern does not have.
    """
    pieces: list[str | int] = []  # literal text, or a group number / name to substitute
    position = 0
    for token in _TOKEN.finditer(replacement):
        pieces.append(replacement[position : token.start()])
        dollar, whole, braced, named, digits = token.groups()
        if dollar:
            pieces.append("$")
        elif whole:
            pieces.append(0)
        elif braced is not None:
            pieces.append(_check_group(pattern, int(braced)))
        elif named is not None:
            if named not in pattern.groupindex:
                raise ValueError(f"replacement refers to group <{named}>, which the pattern does not define")
            pieces.append(pattern.groupindex[named])
        else:
            # JavaScript reads two digits when that group exists, else one digit and a literal.
            if len(digits) == 2 and int(digits) > pattern.groups:
                pieces.append(_check_group(pattern, int(digits[0])))
                pieces.append(digits[1])
            else:
                pieces.append(_check_group(pattern, int(digits)))
        position = token.end()
    pieces.append(replacement[position:])

    def expand(match: re.Match[str]) -> str:
        return "".join(piece if isinstance(piece, str) else (match.group(piece) or "") for piece in pieces)

    return expand


def _check_group(pattern: re.Pattern[str], number: int) -> int:
    if number > pattern.groups:
        raise ValueError(
            f"replacement refers to group ${number}, but the pattern has {pattern.groups} group(s)"
        )
    return number


@dataclass(frozen=True)
class FileChange:
    """One file whose text a replacement changes."""

    path: Path
    old_text: str
    new_text: str
    count: int

    def diff(self) -> str:
        """Unified diff of the change, with paths as the user sees them."""
        name = display_path(self.path)
        return "".join(
            difflib.unified_diff(
                self.old_text.splitlines(keepends=True),
                self.new_text.splitlines(keepends=True),
                fromfile=f"a/{name}",
                tofile=f"b/{name}",
            )
        )


def plan_replacements(
    pattern: str, replacement: str, root: Path, extensions: Iterable[str] | None = None
) -> list[FileChange]:
    """Compute every change without writing; binary and undecodable files are skipped."""
    regex = re.compile(pattern, re.MULTILINE)
    expand = compile_replacement(regex, replacement)
    changes = []
    for path in iter_files(root, extensions):
        text = read_text_file(path)
        if text is None:
            continue
        new_text, count = regex.subn(expand, text)
        if count and new_text != text:
            changes.append(FileChange(path=path, old_text=text, new_text=new_text, count=count))
    return changes


def apply_changes(changes: Iterable[FileChange]) -> None:
    """Write the new texts, keeping bytes exactly as computed (newline style included)."""
    for change in changes:
        change.path.write_bytes(change.new_text.encode("utf-8"))
