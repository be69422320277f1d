"""Check this machine for the voice service and say what is missing and how to fix it.

    python3 tools/setup_environment.py          # report only (works before anything is installed)
    python3 tools/setup_environment.py --fix    # also run the fixes it can: scripts/setup_env.sh,
                                                # download the models (or generate demo ones)

Checks: Python 3.11, the pinned packages of pyproject.toml, numpy<2, GPU or CPU, the
settings, the tritonserver binary, the model assets, free ports, espeak-ng (tests).
A GPU counts as fine only when torch is a CUDA build (torch.version.cuda set) that sees it;
beside the CPU wheel it fails with the fix, as the service itself would at start (rvc.device).
Exit codes: 0 nothing failed (warnings allowed), 1 something failed.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if importlib.util.find_spec("rvc") is None:  # run from a checkout that is not installed
    sys.path.insert(0, str(REPO_ROOT))

from rvc.provision.doctor import Outcome, fix_commands, format_table, run_checks  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fix", action="store_true", help="run the fixes that can be automated, then check again")
    args = parser.parse_args(argv)

    checks = run_checks()
    print(format_table(checks))
    failed = [check for check in checks if check.status is Outcome.FAIL]
    if not args.fix:
        if failed:
            print(f"\n{len(failed)} check(s) failed; run with --fix to repair what can be repaired")
        return 1 if failed else 0

    commands = fix_commands(checks, sys.executable)
    if not commands:
        print("\nnothing that --fix can repair" if failed else "\nnothing to fix")
        return 1 if failed else 0
    for command in commands:
        if command[0] != "bash":
            command = [_best_python(), *command[1:]]  # the environment setup_env.sh may just have made
        print(f"\n$ {' '.join(command)}", flush=True)
        code = subprocess.call(command, cwd=REPO_ROOT / "tools")
        if code != 0:
            print(f"(exit code {code})", flush=True)
    print("\nchecking again:", flush=True)
    return subprocess.call([_best_python(), str(Path(__file__).resolve())], cwd=REPO_ROOT / "tools")


def _best_python() -> str:
    venv_python = REPO_ROOT / ".venv" / "bin" / "python"
    return str(venv_python) if venv_python.is_file() else sys.executable


if __name__ == "__main__":
    sys.exit(main())
