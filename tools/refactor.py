"""Safe refactoring helper (the seed's ``refactor.js``).

    python tools/refactor.py usages RVCClient --path=rvc               # every use of a symbol
    python tools/refactor.py rename old_name new_name --path=rvc --dry-run   # preview (rope)
    python tools/refactor.py rename old_name new_name --path=rvc       # apply the rename
    python tools/refactor.py duplicates --path=rvc                     # copy-pasted blocks
    python tools/refactor.py unused --path=rvc                         # dead code (vulture)
    python tools/refactor.py move RVCClient rvc.client --path=rvc      # is moving it safe?

A method is named Class.method; --file picks the defining file when a name is defined twice.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from codetools.calls import find_usages, format_sites
from codetools.cli import run_cli
from codetools.movecheck import check_move, format_move
from codetools.refactoring import find_unused, rename
from codetools.similarity import duplicate_blocks
from codetools.sources import display_path, parse_tree

_ARITY = {"usages": 1, "rename": 2, "duplicates": 0, "unused": 0, "move": 2}


def main() -> str:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=list(_ARITY))
    parser.add_argument(
        "names", nargs="*", help="symbol (usages), OLD NEW (rename), SYMBOL DEST_MODULE (move)"
    )
    parser.add_argument("--path", default=".", help="package, folder or file to work on (default: .)")
    parser.add_argument("--dry-run", action="store_true", help="rename: print the diff, write nothing")
    parser.add_argument("--file", help="rename: the file that defines the symbol, if the name is ambiguous")
    parser.add_argument(
        "--min-lines", type=int, default=6, help="duplicates: shortest block reported (default 6)"
    )
    parser.add_argument(
        "--min-confidence", type=int, default=60, help="unused: vulture confidence 0-100 (default 60)"
    )
    args = parser.parse_args()
    if len(args.names) != _ARITY[args.command]:
        parser.error(f"'{args.command}' takes {_ARITY[args.command]} name argument(s), got {len(args.names)}")
    path = Path(args.path)

    if args.command == "usages":
        return format_sites(find_usages(parse_tree(path), args.names[0]), f"usages of {args.names[0]}")
    if args.command == "rename":
        old, new = args.names
        file = Path(args.file) if args.file else None
        changes = rename(path, old, new, apply=not args.dry_run, file=file)
        if args.dry_run:
            return (
                "".join(change.diff() for change in changes)
                + f"(dry run) {len(changes)} file(s) would change"
            )
        return "\n".join(
            [
                *(display_path(change.path) for change in changes),
                f"renamed {old} -> {new} in {len(changes)} file(s)",
            ]
        )
    if args.command == "duplicates":
        blocks = duplicate_blocks(parse_tree(path), min_lines=args.min_lines)
        lines = []
        for block in blocks:
            places = ", ".join(f"{module.display}:{first}-{last}" for module, first, last in block.places)
            lines.append(f"{block.length} lines x{len(block.places)}: {places}")
        lines.append(f"{len(blocks)} duplicated block(s) of >= {args.min_lines} code lines")
        return "\n".join(lines)
    if args.command == "unused":
        items = find_unused(path, args.min_confidence)
        lines = [
            f"{item.location}: unused {item.kind} '{item.name}' ({item.confidence}% confidence)"
            for item in items
        ]
        lines.append(f"{len(items)} unused item(s) at >= {args.min_confidence}% confidence")
        return "\n".join(lines)
    symbol, destination = args.names
    return format_move(check_move(path, symbol, destination))


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
