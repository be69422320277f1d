#!/usr/bin/env bash
# Set up the environment (first run installs everything), then start tritonserver + the Voice API.
# Extra arguments go to `python -m rvc.launch` (--no-download, --no-triton).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
exec .venv/bin/python -m rvc.launch "$@"
