"""Projections that show structure without implementation (the seed's ``schema.js``).

python tools/schema.py --path=rvc/server --mode=signatures   # signatures only (default)
python tools/schema.py --path=rvc --mode=structure           # file/class/method tree
python tools/schema.py --path=rvc --mode=api                 # __all__ names with signatures
python tools/schema.py --path=rvc --mode=types               # dataclasses, enums, models, aliases
python tools/schema.py --path=rvc --mode=signatures --output=SCHEMA.txt
"""

from __future__ import annotations

import argparse
from pathlib import Path

from codetools.cli import emit, run_cli
from codetools.schema import MODES, render
from codetools.sources import parse_tree


def main() -> str:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--path", default=".", help="folder or file to project (default: .)")
    parser.add_argument(
        "--mode", default="signatures", choices=MODES, help="projection (default: signatures)"
    )
    parser.add_argument("--output", help="write the projection to this file instead of stdout")
    args = parser.parse_args()
    path = Path(args.path)
    return emit(render(args.mode, parse_tree(path), path), args.output)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
