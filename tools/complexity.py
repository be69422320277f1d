"""Complexity hotspots, to set refactoring priorities (the seed's ``complexity.js``).

    python tools/complexity.py --path=rvc --top=20                  # top 20 functions
    python tools/complexity.py --file=rvc/processing/pipeline.py    # one file, in source order
    python tools/complexity.py --path=rvc --threshold=15            # everything at or above 15
    python tools/complexity.py --function=process --path=rvc        # details of one function

Scores are radon's cyclomatic complexity; ranks A (1-5) .. F (41+).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from codetools.cli import run_cli
from codetools.complexity import format_file, format_function, format_threshold, format_top


def main() -> str:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--path", default=".", help="folder or file to analyse (default: .)")
    parser.add_argument(
        "--top", type=int, default=20, help="how many of the most complex functions (default: 20)"
    )
    parser.add_argument("--file", help="analyse one file, all functions in source order")
    parser.add_argument("--threshold", type=int, help="list every function with complexity >= this")
    parser.add_argument("--function", help="details of the function(s) with this name")
    args = parser.parse_args()

    if args.function:
        return format_function(Path(args.file or args.path), args.function)
    if args.file:
        return format_file(Path(args.file))
    if args.threshold is not None:
        return format_threshold(Path(args.path), args.threshold)
    return format_top(Path(args.path), args.top)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
