#!/usr/bin/env bash
# Start the whole voice service: tritonserver (Spark-TTS, gRPC :8001), then the Voice API (:8080).
#
# The container's entry point (Dockerfile.voice), also usable on a checkout after scripts/setup_env.sh.
# It checks the environment, then hands over to the supervisor, `python -m rvc.launch`, which provisions
# the models (download, or demo assets when the hub is unreachable), starts tritonserver through
# rvc.grpc.launcher (NVIDIA's binary when it is on PATH, as in the image; otherwise the one bundled with
# nvidia-pytriton), waits until it is ready, then serves the API. `exec` makes the supervisor this
# process, so SIGTERM/SIGINT reach it directly: it stops the API, then tritonserver, and its exit code
# (non-zero when a part failed to start) is this script's.
#
#   scripts/start_services.sh [--no-download] [--no-triton]
#
# Environment: the service's settings (RVC_MODEL, RVC_WORKERS, API_PORT, API_HOST, TRITON_MODEL_REPO, ...,
# see README.md), plus PYTHON to choose the interpreter (default: the checkout's .venv, else python3).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

python="${PYTHON:-}"
if [ -z "$python" ]; then
  if [ -x "$root/.venv/bin/python" ]; then python="$root/.venv/bin/python"; else python="python3"; fi
fi

fail() { echo "start_services: $*" >&2; exit 1; }

command -v "$python" >/dev/null 2>&1 || fail "no Python interpreter '$python' (set PYTHON, or run scripts/setup_env.sh)"
"$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
  || fail "$("$python" -V 2>&1) found; the service needs Python 3.11 (set PYTHON)"
# A neutral working directory: with the repo root as cwd, its triton/ folder shadows packages.
cd "${TMPDIR:-/tmp}"
"$python" -c 'import rvc.launch' 2>/dev/null \
  || fail "the voice-service package is not importable by $python (run scripts/setup_env.sh, or pip install -e .)"

if command -v tritonserver >/dev/null 2>&1; then
  echo "start_services: tritonserver: $(command -v tritonserver)"
else
  echo "start_services: tritonserver: the one bundled with nvidia-pytriton"
fi

exec "$python" -m rvc.launch "$@"
