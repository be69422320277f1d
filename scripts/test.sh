#!/usr/bin/env bash
# Set up the environment (first run installs everything), check the code, then run the full test suite.
# The checks come first and stop the run on any finding: ruff (lint) and mypy (types), both configured
# in pyproject.toml. Extra arguments go to pytest, e.g. `bash scripts/test.sh tests/foundation -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh --test
echo "ruff check"
.venv/bin/ruff check .
echo "mypy (files and settings: [tool.mypy] in pyproject.toml)"
.venv/bin/mypy
# Two pytest-xdist workers, one test package each at a time (tests/conftest.py): the suite leaves a
# core idle about half of its time when run serially (waits on servers and subprocesses).
# TEST_WORKERS=0 runs it serially.
exec .venv/bin/python -m pytest -n "${TEST_WORKERS:-2}" "$@"
