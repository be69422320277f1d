#!/usr/bin/env bash
# Set up the environment (first run installs everything) and run the full test suite.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh tests/foundation -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh --test
exec .venv/bin/python -m pytest "$@"
