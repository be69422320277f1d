#!/usr/bin/env bash
# Spark-TTS on Triton, stage by stage (the official runtime's run.sh, for this repository):
#
#   triton/run.sh <start_stage> <stop_stage> [offline|streaming]
#
# Stage 3 keeps the server in the foreground, as the official script does: run `run.sh 0 3 ...` in
# one terminal and `run.sh 4 5 ...` in another once the server is ready.
#
#   0  download Spark-TTS-0.5B (tools/download_all_assets.py --only spark)
#   1  convert the LLM and build a TensorRT-LLM engine (skipped, with a message, without trtllm-build)
#   2  prepare the model repository from triton/model_repo into $TRITON_MODEL_REPO
#   3  start tritonserver on it (python -m rvc.grpc.serve; Ctrl-C stops it)
#   4  benchmark client (bench/bench_triton.py against the running server)
#   5  one utterance through the running server (triton/scripts/synthesize.py), written to $OUTPUT_WAV
#
# Stage 1 runs in NVIDIA's TensorRT-LLM image (tritonserver:<release>-trtllm-python-py3): `tensorrt_llm`
# exists only in that image's own Python (3.10), not in the service's 3.11 venv, so the conversion runs
# with $TRTLLM_PYTHON (default: the first of /usr/bin/python3, /usr/local/bin/python3, python3 that imports
# tensorrt_llm). The engine holds max_batch_size rows of (prompt + budget) tokens: prompt
# $TRTLLM_MAX_INPUT_LEN [rvc.grpc.model_repository.TRTLLM_PROMPT_TOKENS, 2048: 30 s of reference at 50
# tokens/s, global tokens, one sentence], budget $MAX_NEW_TOKENS [3000]; stage 2 sizes the repository's
# paged KV pool and attention window from the same two (rvc.device.kv_cache_tokens).
# Engines go to $TRT_ENGINE_DIR: put it on a volume in a container (the compose file mounts var/), so a
# rebuilt container does not rebuild them; the service uses them with LLM_BACKEND=tensorrtllm.
#
# Environment (defaults in brackets): SPARK_MODEL_DIR [pretrained_models/Spark-TTS-0.5B],
# TRITON_MODEL_REPO [var/model_repo], DEVICE [rvc.device's decision for "auto": cuda when a driver is
# present, an error when torch is then a CPU build], LLM_BACKEND [auto: tensorrtllm when $TRT_ENGINE_DIR
# holds an engine, else rvc.settings.auto_llm_backend: onnxruntime on the CPU when it is installed, python
# otherwise], TRT_ENGINE_DIR [var/trt_engines], TRT_DTYPE [bfloat16 on compute capability >= 8.0,
# float16 below (Turing/T4 has no bf16); bfloat16 is refused there], LLM_DTYPE [auto: the python LLM's
# dtype, decided by each instance's card as sparktts.precision says], TRTLLM_PYTHON, TRTLLM_MAX_INPUT_LEN,
# MAX_NEW_TOKENS, BLS_INSTANCE_NUM [1], TRITON_MAX_BATCH_SIZE [16], TRITON_GPU_COUNT [auto: with DEVICE=cuda
# every GPU torch sees; above 1 the instances spread over them with KIND_GPU, as the service does], TRITON_GRPC_PORT [8001],
# TRITON_HTTP_PORT [8000], TRITON_STARTUP_TIMEOUT_S [rvc.settings' default, 600], REFERENCE_AUDIO [example/prompt_audio.wav],
# REFERENCE_TEXT [none], TARGET_TEXT, OUTPUT_WAV [var/run/triton_single.wav], PYTHON [.venv/bin/python].
set -euo pipefail

stage=${1:?usage: triton/run.sh <start_stage> <stop_stage> [offline|streaming]}
stop_stage=${2:?usage: triton/run.sh <start_stage> <stop_stage> [offline|streaming]}
service_type=${3:-offline}
case "$service_type" in offline|streaming) ;; *) echo "service type must be offline or streaming" >&2; exit 2 ;; esac

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
python=${PYTHON:-$root/.venv/bin/python}
[ -x "$python" ] || python=$(command -v python3)

model_dir=${SPARK_MODEL_DIR:-$root/pretrained_models/Spark-TTS-0.5B}
model_repo=${TRITON_MODEL_REPO:-$root/var/model_repo}
trt_engines_dir=${TRT_ENGINE_DIR:-$root/var/trt_engines}
max_batch_size=${TRITON_MAX_BATCH_SIZE:-16}
max_new_tokens=${MAX_NEW_TOKENS:-3000}
# the python helpers run from a neutral cwd, because the repo root's triton/ folder would shadow OpenAI's
# triton package when torch is imported (reference/infra.md section 0.5)
in_python() { (cd "${TMPDIR:-/tmp}" && "$python" "$@"); }
max_input_len=${TRTLLM_MAX_INPUT_LEN:-$(in_python -c "from rvc.grpc.model_repository import TRTLLM_PROMPT_TOKENS; print(TRTLLM_PROMPT_TOKENS)")}

# rvc.device decides, as the service does
device_report() { in_python -m rvc.device --device "${DEVICE:-auto}" "$@"; }
if [ -z "${DEVICE:-}" ] || [ "$DEVICE" = auto ]; then
    DEVICE=$(device_report --field device) || { echo "run.sh: no usable device (above); set DEVICE=cpu to use the CPU" >&2; exit 1; }
fi
if [ -z "${LLM_BACKEND:-}" ] || [ "$LLM_BACKEND" = auto ]; then
    if [ -f "$trt_engines_dir/config.json" ]; then LLM_BACKEND=tensorrtllm
    else LLM_BACKEND=$(in_python -c "from rvc.settings import auto_llm_backend; print(auto_llm_backend('$DEVICE'))"); fi
fi
echo "stages $stage..$stop_stage, $service_type, model $model_dir, repository $model_repo, device $DEVICE, llm $LLM_BACKEND"

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
    echo "== stage 0: download Spark-TTS-0.5B"
    if [ -f tools/download_all_assets.py ]; then
        SPARK_MODEL_DIR=$model_dir "$python" tools/download_all_assets.py --only spark
    else
        echo "tools/download_all_assets.py is missing: put Spark-TTS-0.5B into $model_dir by hand" >&2
        exit 1
    fi
fi

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
    echo "== stage 1: TensorRT-LLM checkpoint and engine"
    if command -v trtllm-build >/dev/null 2>&1; then
        trtllm_python=${TRTLLM_PYTHON:-}
        if [ -z "$trtllm_python" ]; then
            for candidate in /usr/bin/python3 /usr/local/bin/python3 python3; do
                if "$candidate" -c 'import tensorrt_llm' >/dev/null 2>&1; then trtllm_python=$candidate; break; fi
            done
        fi
        if [ -z "$trtllm_python" ]; then
            echo "run.sh: no Python here imports tensorrt_llm; use the TensorRT-LLM image or set TRTLLM_PYTHON" >&2
            exit 1
        fi
        trt_dtype=${TRT_DTYPE:-$(device_report --field half_dtype)}
        # a bf16 engine on a card without bf16 (T4) is refused here, not at the first request
        in_python -c 'import sys; from rvc.device import check_llm_dtype, torch_facts
from rvc.errors import ConfigError
try:
    check_llm_dtype(sys.argv[1], "cuda", torch_facts().capability, "TRT_DTYPE")
except ConfigError as exc:
    sys.exit(f"run.sh: {exc}")' "$trt_dtype"
        trt_weights_dir=$(dirname "$trt_engines_dir")/tllm_checkpoint_${trt_dtype}
        kv_tokens=$(in_python -c 'import sys; from rvc.device import kv_cache_tokens
print(kv_cache_tokens(*map(int, sys.argv[1:])))' "$max_batch_size" "$max_input_len" "$max_new_tokens")
        echo "engine: $trt_dtype, batch $max_batch_size x ($max_input_len prompt + $max_new_tokens budget) = $kv_tokens KV tokens; python $trtllm_python; into $trt_engines_dir"
        "$trtllm_python" triton/scripts/convert_checkpoint.py --model_dir "$model_dir/LLM" \
            --output_dir "$trt_weights_dir" --dtype "$trt_dtype"
        # --logits_dtype float32: a half engine's logits in float16 overflow to inf above 65504 and break
        # sampling (the python LLM scores its head in float32 for the same reason: sparktts.precision)
        trtllm-build --checkpoint_dir "$trt_weights_dir" --output_dir "$trt_engines_dir" \
            --max_batch_size "$max_batch_size" --max_input_len "$max_input_len" \
            --max_seq_len "$((max_input_len + max_new_tokens))" --max_num_tokens 32768 \
            --kv_cache_type paged --gemm_plugin "$trt_dtype" --logits_dtype float32
        LLM_BACKEND=tensorrtllm
    else
        echo "trtllm-build not found: skipping the TensorRT-LLM engine; the LLM runs in the python backend"
    fi
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
    echo "== stage 2: prepare the model repository"
    engine_args=()
    if [ "$LLM_BACKEND" = tensorrtllm ]; then
        engine_args=(--trtllm-engine-dir "$trt_engines_dir" --trtllm-prompt-tokens "$max_input_len")
    fi
    "$python" triton/scripts/prepare_repository.py --output "$model_repo" --model-dir "$model_dir" \
        --mode "$service_type" --device "$DEVICE" --llm-backend "$LLM_BACKEND" "${engine_args[@]}" --dtype "${LLM_DTYPE:-auto}" \
        --bls-instances "${BLS_INSTANCE_NUM:-1}" --max-batch-size "$max_batch_size" --max-new-tokens "$max_new_tokens" \
        --gpu-count "${TRITON_GPU_COUNT:-auto}"
fi

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
    echo "== stage 3: start tritonserver (Ctrl-C stops it)"
    "$python" -m rvc.grpc.serve --model-repository "$model_repo" \
        --grpc-port "${TRITON_GRPC_PORT:-8001}" --http-port "${TRITON_HTTP_PORT:-8000}"  # TRITON_STARTUP_TIMEOUT_S: read by the settings
fi

if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
    echo "== stage 4: benchmark client against the running server"
    "$python" bench/bench_triton.py --server "127.0.0.1:${TRITON_GRPC_PORT:-8001}" --mode "$service_type" \
        --concurrency 1,2,4
fi

if [ "$stage" -le 5 ] && [ "$stop_stage" -ge 5 ]; then
    echo "== stage 5: one utterance"
    if [ ! -f "${REFERENCE_AUDIO:-$root/example/prompt_audio.wav}" ]; then
        echo "no reference clip at ${REFERENCE_AUDIO:-$root/example/prompt_audio.wav}: set REFERENCE_AUDIO" >&2
        exit 1
    fi
    reference_args=(--reference "${REFERENCE_AUDIO:-$root/example/prompt_audio.wav}")
    if [ -n "${REFERENCE_TEXT:-}" ]; then reference_args+=(--reference-text "$REFERENCE_TEXT"); fi
    "$python" triton/scripts/synthesize.py --server "127.0.0.1:${TRITON_GRPC_PORT:-8001}" "${reference_args[@]}" \
        --text "${TARGET_TEXT:-Hello from Spark-TTS on Triton.}" --output "${OUTPUT_WAV:-$root/var/run/triton_single.wav}"
fi
