"""Semantic projections of a codebase (the seed's ``analyze.js``).

python tools/analyze.py imports --path=rvc           # import graph (grimp)
python tools/analyze.py classes --path=rvc/processing  # hierarchy, methods public/private/magic
python tools/analyze.py calls submit_job              # call sites of a function or method
python tools/analyze.py exports --path=rvc           # __all__ of every module
python tools/analyze.py dataflow TTSRVCPipeline      # instance attributes and who mutates them
"""

from __future__ import annotations

import argparse
from pathlib import Path

from codetools.calls import find_call_sites, format_sites
from codetools.classes import format_classes, format_dataflow
from codetools.cli import run_cli
from codetools.modulereport import format_exports, format_imports
from codetools.sources import parse_tree


def main() -> str:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["imports", "classes", "calls", "exports", "dataflow"])
    parser.add_argument("name", nargs="?", help="function name for 'calls', class name for 'dataflow'")
    parser.add_argument("--path", default=".", help="package, folder or file to analyse (default: .)")
    args = parser.parse_args()
    path = Path(args.path)

    if args.command in ("calls", "dataflow") and not args.name:
        parser.error(f"'{args.command}' needs a name, e.g. analyze.py {args.command} NAME")
    if args.command == "imports":
        return format_imports(path)
    modules = parse_tree(path)
    if args.command == "classes":
        return format_classes(modules)
    if args.command == "calls":
        return format_sites(find_call_sites(modules, args.name), f"calls of {args.name}")
    if args.command == "exports":
        return format_exports(modules)
    return format_dataflow(modules, args.name)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
