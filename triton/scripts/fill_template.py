#!/usr/bin/env python3
"""Fill ``${key}`` placeholders of a config.pbtxt template, with the official runtime's CLI.

    python triton/scripts/fill_template.py [-i] <config.pbtxt> key:value,key2:value2

Escape ``,`` and ``:`` inside values with a backslash. Keys the template does not mention are an
error; placeholders nobody fills stay literal (``max_queue_size`` and
``max_queue_delay_microseconds`` default to 0). ``-i`` rewrites the file, otherwise the result is
printed. ``triton/scripts/prepare_repository.py`` fills a whole repository in one go.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rvc.grpc.model_repository import fill_template, parse_substitutions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file_path", type=Path, help="the .pbtxt template")
    parser.add_argument("substitutions", help="key:value pairs separated by commas")
    parser.add_argument("-i", "--in_place", action="store_true", help="rewrite the file instead of printing")
    args = parser.parse_args(argv)
    try:
        filled = fill_template(args.file_path.read_text(), parse_substitutions(args.substitutions))
    except (OSError, ValueError) as exc:
        print(f"fill_template: {args.file_path}: {exc}", file=sys.stderr)
        return 1
    if args.in_place:
        args.file_path.write_text(filled)
    else:
        sys.stdout.write(filled)
    return 0


if __name__ == "__main__":
    sys.exit(main())
