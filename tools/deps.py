"""Dependency-graph analysis with impact assessment (the seed's ``deps.js``).

    python tools/deps.py --path=rvc                     # full graph
    python tools/deps.py impact rvc_server --path=rvc   # what breaks if I change this?
    python tools/deps.py depends pipeline --path=rvc    # what does this module depend on?
    python tools/deps.py circular --path=rvc            # import cycles
    python tools/deps.py coupling --path=rvc            # Ca, Ce, instability
    python tools/deps.py layers --path=rvc              # suggested layer structure

Modules may be named in full (rvc.processing.pipeline) or by a unique tail (pipeline).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from codetools import depsreport
from codetools.cli import run_cli
from codetools.importgraph import build_module_graph


def main() -> str:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "command",
        nargs="?",
        default="graph",
        choices=["graph", "impact", "depends", "circular", "coupling", "layers"],
    )
    parser.add_argument("module", nargs="?", help="module for 'impact' and 'depends'")
    parser.add_argument("--path", default=".", help="package or folder of packages (default: .)")
    args = parser.parse_args()
    if args.command in ("impact", "depends") and not args.module:
        parser.error(f"'{args.command}' needs a module, e.g. deps.py {args.command} pipeline")

    graph = build_module_graph(Path(args.path))
    if args.command == "impact":
        return depsreport.format_impact(graph, args.module)
    if args.command == "depends":
        return depsreport.format_depends(graph, args.module)
    renderers = {
        "graph": depsreport.format_graph,
        "circular": depsreport.format_circular,
        "coupling": depsreport.format_coupling,
        "layers": depsreport.format_layers,
    }
    return renderers[args.command](graph)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
