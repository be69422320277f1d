#!/usr/bin/env bash
# Create .venv (Python 3.11) and install the pinned project into it.
# Idempotent: when pyproject.toml has not changed since the last install, it takes a second.
#   --test    also install what the test suite needs from the system (espeak-ng, chromium), when possible
set -euo pipefail
cd "$(dirname "$0")/.."

want_test_deps=0
for arg in "$@"; do
  case "$arg" in
    --test) want_test_deps=1 ;;
    *) echo "unknown option: $arg" >&2; exit 2 ;;
  esac
done

PYTHON=${PYTHON:-}
if [ -z "$PYTHON" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      PYTHON=$candidate; break
    fi
  done
fi
if [ -z "$PYTHON" ]; then
  echo "Python 3.11 is required (set PYTHON=/path/to/python3.11)" >&2; exit 1
fi

if [ "$want_test_deps" = 1 ]; then
  # espeak-ng: real reference speech; chromium: the playground's browser tests (Playwright drives it);
  # nginx: the fleet tests' load balancer; kubernetes-client: `kubectl kustomize` renders deploy/k8s
  # (only when no kubectl is there: another package may already own /usr/bin/kubectl).
  missing=()
  command -v espeak-ng >/dev/null || missing+=(espeak-ng)
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
  command -v kubectl >/dev/null || missing+=(kubernetes-client)
  # postgresql: tests/storage and the fleet test run a throwaway cluster as the postgres user.
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
  if [ ${#missing[@]} -gt 0 ]; then
    sudo_cmd=()
    [ "$(id -u)" = 0 ] || sudo_cmd=(sudo)
    if command -v apt-get >/dev/null && { [ "$(id -u)" = 0 ] || command -v sudo >/dev/null; }; then
      echo "installing ${missing[*]} (test dependencies)"
      "${sudo_cmd[@]}" apt-get update -qq
      "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
      echo "warning: ${missing[*]} missing and cannot be installed here; the tests that need them will fail" >&2
    fi
  fi
fi

if [ ! -x .venv/bin/python ]; then
  echo "creating .venv with $PYTHON"
  "$PYTHON" -m venv .venv
fi

stamp=.venv/.voice-service-installed
# this script's own install lines count too (torchfcpe below is not in pyproject.toml)
digest=$(cat pyproject.toml scripts/setup_env.sh | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$digest" ]; then
  exit 0
fi
echo "installing pinned dependencies into .venv (first time: a few minutes)"
# torch first and exactly pinned: the CPU wheel; nothing may pull a CUDA build afterwards.
# setuptools with it: torch would otherwise pull one without pkg_resources (pyworld needs it), only for the
# next step to take it back, with a resolver error on the way (pyproject.toml pins it too).
.venv/bin/python -m pip install --disable-pip-version-check -q "torch==2.13.0" "setuptools==80.9.0"
# dev: pytest, ruff, mypy; analysis: the code-analysis tools under tools/ (their tests run in CI).
.venv/bin/python -m pip install --disable-pip-version-check -q -e ".[dev,analysis]"
# FCPE's weights ship inside the torchfcpe wheel. Its code imports torchaudio, which has no build for our torch,
# and the service never imports it (rvc/infer/fcpe.py reads the weight file), so it is installed without its
# dependencies (pyproject.toml cannot say --no-deps), and `pip check` forgives it only those.
.venv/bin/python -m pip install --disable-pip-version-check -q --no-deps "torchfcpe>=0.0.4,<0.1"
if ! problems=$(.venv/bin/python -m pip check 2>&1); then
  problems=$(grep -v '^torchfcpe [^ ]* requires ' <<<"$problems" || true)
  if [ -n "$problems" ]; then echo "$problems" >&2; exit 1; fi
fi
echo "$digest" > "$stamp"
