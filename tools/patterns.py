"""Detect architectural patterns, to avoid reinventing the wheel (the seed's ``patterns.js``).

python tools/patterns.py --path=rvc                 # all detections
python tools/patterns.py ipc --path=rvc             # socket, grpc, queue, pipe, shared memory, http, file
python tools/patterns.py process --path=rvc         # processes, threads, subprocesses, sync primitives
python tools/patterns.py clientserver --path=rvc    # servers, clients, routes
python tools/patterns.py similar --path=rvc         # structurally similar functions
python tools/patterns.py structural --path=rvc      # singleton, factory, registry, abstract bases
"""

from __future__ import annotations

import argparse
from pathlib import Path

from codetools.cli import run_cli
from codetools.patterns import CATEGORIES, detect, format_findings
from codetools.similarity import similar_functions
from codetools.sources import parse_tree


def main() -> str:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("category", nargs="?", default="all", choices=["all", *CATEGORIES])
    parser.add_argument("--path", default=".", help="folder or file to scan (default: .)")
    parser.add_argument(
        "--threshold", type=float, default=0.85, help="similarity for 'similar', 0..1 (default 0.85)"
    )
    args = parser.parse_args()

    categories = CATEGORIES if args.category == "all" else (args.category,)
    modules = parse_tree(Path(args.path))
    lines = format_findings(detect(modules, categories), categories)
    if "similar" in categories:
        pairs = similar_functions(modules, threshold=args.threshold)
        lines.append("== similar ==")
        lines.extend(
            f"  {round(ratio * 100)}%  {a.qualname} ({a.location})  ~  {b.qualname} ({b.location})"
            for a, b, ratio in pairs
        )
        lines.append(f"{len(pairs)} similar pair(s) at >= {round(args.threshold * 100)}%")
    return "\n".join(lines).rstrip()


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
