#!/usr/bin/env bash
# The GPU check: what only an NVIDIA machine can tell about this service, in at most 8 minutes.
#
#   bench/gpu_check.sh                 # in the image: docker run --gpus all ... bash bench/gpu_check.sh
#   PYTHON=/opt/venv/bin/python bench/gpu_check.sh
#
# Steps (bench/gpu_check.py says what each measures): 1 torch/driver facts and disk use, 2 a convolution
# under the launcher's environment, 3 Triton on CUDA (+ sampling's host syncs), 4 the RVC pool on CUDA
# (+ RMVPE chunks, the decoder's CPU tunings), 5 CUDA OOM and sticky errors, 6 /synthesize end to end with
# /status, 7 throughput beside the official figures, 8 LLM_BACKEND=tensorrtllm (TensorRT-LLM image only).
# Steps 1-2 run on any machine; 3-8 print [SKIP] without a CUDA device, [PENDING] where the code path
# they check is not built yet (none is, now). Exit code 1 when a step failed. Run it from anywhere: it works in a
# neutral directory (the repo root's triton/ folder would shadow OpenAI's triton package).
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${PYTHON:-$root/.venv/bin/python}
[ -x "$python" ] || python=$(command -v python3)
cd "${TMPDIR:-/tmp}"
# 470 s of steps inside, 480 s hard limit outside: the whole run stays under 8 minutes
exec timeout --signal=TERM --kill-after=20 480 "$python" "$root/bench/gpu_check.py" --budget-s 470 "$@"
