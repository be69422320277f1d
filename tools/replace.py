"""Project-wide regex find and replace (the seed's ``replace.js``).

    python tools/replace.py "from infer\\." "from rvc.infer." --ext=py
    python tools/replace.py "oldFunc" "newFunc" --path=src --dry-run
    python tools/replace.py "console\\.log\\((.*)\\)" "logger.info(\\$1)" --ext=js,ts

Groups are referenced as ``$1``/``${1}``/``$<name>``/``$&``; ``$$`` is a literal
dollar. ``.git``, virtual environments, caches and binary files are never touched.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from codetools.cli import run_cli, split_extensions
from codetools.sources import display_path
from codetools.textreplace import apply_changes, plan_replacements


def main() -> str:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("pattern", help="Python regular expression (MULTILINE)")
    parser.add_argument("replacement", help="replacement text; $1, ${1}, $<name>, $& and $$ are expanded")
    parser.add_argument("--path", default=".", help="folder or file to process (default: .)")
    parser.add_argument(
        "--ext", help="comma-separated extensions to include, e.g. py,md (default: all text files)"
    )
    parser.add_argument("--dry-run", action="store_true", help="print a unified diff instead of writing")
    args = parser.parse_args()

    changes = plan_replacements(args.pattern, args.replacement, Path(args.path), split_extensions(args.ext))
    total = sum(change.count for change in changes)
    summary = f"{total} replacement(s) in {len(changes)} file(s)"
    if args.dry_run:
        diffs = [change.diff() for change in changes]
        return "".join(diffs) + f"(dry run) {summary}; nothing written"
    apply_changes(changes)
    lines = [f"{display_path(change.path)}: {change.count}" for change in changes]
    return "\n".join([*lines, summary])


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
