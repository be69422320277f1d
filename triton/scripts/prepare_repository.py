#!/usr/bin/env python3
"""Prepare a servable model repository from triton/model_repo (run.sh stage 2).

    python triton/scripts/prepare_repository.py --output var/model_repo \
        --model-dir pretrained_models/Spark-TTS-0.5B --mode streaming [--device cuda] ...

Every flag maps to a ``rvc.grpc.model_repository.RepositoryConfig`` field; the output folder is
replaced only if an earlier run prepared it.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from rvc.errors import ConfigError
from rvc.grpc.model_repository import TRTLLM_PROMPT_TOKENS, RepositoryConfig, prepare_model_repository


def gpu_count(value: str, device: str) -> int:
    """--gpu-count: a number, or "auto": the GPUs torch sees with --device cuda (``rvc.device.instance_gpu_count``,
    as the service counts them), so that run.sh and the fleet's Triton spread instances over several cards too."""
    if value != "auto":
        try:
            return int(value)
        except ValueError:
            raise ValueError(f"--gpu-count must be a number or auto, got {value!r}") from None
    if device != "cuda":
        return 0  # torch is not imported for a CPU repository
    from rvc.device import instance_gpu_count, torch_facts

    return instance_gpu_count("cuda", torch_facts())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, required=True, help="repository folder to write (TRITON_MODEL_REPO)")
    parser.add_argument("--model-dir", type=Path, required=True, help="Spark-TTS-0.5B folder")
    parser.add_argument("--mode", choices=("offline", "streaming"), default="offline")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--dtype", choices=("auto", "float32", "bfloat16", "float16"), default="float32",
                        help="the LLM's dtype (LLM_DTYPE); auto: each spark_tts instance picks for its card "
                        "(float32 on the CPU, bfloat16 from compute capability 8.0, float16 below)")
    parser.add_argument("--llm-backend", choices=("python", "tensorrtllm", "onnxruntime"), default="python")
    parser.add_argument("--trtllm-engine-dir", type=Path, default=None)
    parser.add_argument("--llm-onnx-precision", choices=("int8", "fp32"), default=RepositoryConfig.llm_onnx_precision,
                        help="onnxruntime LLM: the export's precision (fp32 is the exact one)")
    parser.add_argument("--llm-restrict-vocab", action="store_true",
                        help="python / onnxruntime LLM: score only the grammar's tokens (faster, not exact)")
    parser.add_argument("--llm-cache-dir", type=Path, default=None,
                        help="onnxruntime LLM: where exports are cached (default: <output>.llm_cache)")
    parser.add_argument("--bls-instances", type=int, default=1)
    parser.add_argument("--tokenizer-instances", type=int, default=1)
    parser.add_argument("--vocoder-instances", type=int, default=1)
    parser.add_argument("--gpu-count", default="auto",
                        help="GPUs to spread instances over; above 1 (with --device cuda) they get KIND_GPU over "
                        "each card; auto (default): every GPU torch sees with --device cuda")
    parser.add_argument("--max-batch-size", type=int, default=16)
    parser.add_argument(
        "--max-queue-delay-us", type=int, default=RepositoryConfig.max_queue_delay_us,
        help="how long the dynamic batcher waits for more requests (a request's sentences arrive together)",
    )
    parser.add_argument("--request-workers", type=int, default=4)
    parser.add_argument(
        "--stream-batching", choices=("true", "false"), default="true",
        help="python LLM, streaming: decode concurrent streams together in one thread (false: one per request)",
    )
    parser.add_argument("--speaker-cache-size", type=int, default=64)
    parser.add_argument("--stream-end", choices=("empty_chunk", "last_chunk"), default="empty_chunk")
    parser.add_argument("--max-new-tokens", type=int, default=3000)
    parser.add_argument("--trtllm-prompt-tokens", type=int, default=TRTLLM_PROMPT_TOKENS,
                        help="tensorrtllm: the engine's max_input_len (run.sh TRTLLM_MAX_INPUT_LEN); the paged KV pool "
                        "holds max-batch-size x (this + max-new-tokens) tokens")
    parser.add_argument(
        "--llm-fast-matmul", choices=("auto", "on", "off"), default="auto",
        help="python LLM decode projections as GEMMs (float32, reordered sums); auto: on for --device cpu",
    )
    parser.add_argument("--no-streaming-model", action="store_true",
                        help="leave out spark_tts_decoupled (saves its stub and LLM copy)")
    parser.add_argument("--stream-first-tokens", type=int, default=RepositoryConfig.stream_first_tokens)
    parser.add_argument("--stream-steady-tokens", type=int, default=RepositoryConfig.stream_steady_tokens)
    parser.add_argument("--stream-chunk-scale", type=float, default=RepositoryConfig.stream_chunk_scale)
    parser.add_argument("--stream-overlap-tokens", type=int, default=RepositoryConfig.stream_overlap_tokens)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        path = prepare_model_repository(
            args.output,
            model_dir=args.model_dir,
            mode=args.mode,
            device=args.device,
            llm_backend=args.llm_backend,
            dtype=args.dtype,
            trtllm_engine_dir=args.trtllm_engine_dir,
            llm_onnx_precision=args.llm_onnx_precision,
            llm_cache_dir=args.llm_cache_dir,
            bls_instances=args.bls_instances,
            tokenizer_instances=args.tokenizer_instances,
            vocoder_instances=args.vocoder_instances,
            gpu_count=gpu_count(args.gpu_count, args.device),
            max_batch_size=args.max_batch_size,
            max_queue_delay_us=args.max_queue_delay_us,
            request_workers=args.request_workers,
            stream_batching=args.stream_batching == "true",
            speaker_cache_size=args.speaker_cache_size,
            stream_end=args.stream_end,
            max_new_tokens=args.max_new_tokens,
            trtllm_prompt_tokens=args.trtllm_prompt_tokens,
            llm_fast_matmul=args.llm_fast_matmul,
            llm_restrict_vocab=args.llm_restrict_vocab,
            streaming_model=not args.no_streaming_model,
            stream_first_tokens=args.stream_first_tokens,
            stream_steady_tokens=args.stream_steady_tokens,
            stream_chunk_scale=args.stream_chunk_scale,
            stream_overlap_tokens=args.stream_overlap_tokens,
        )
    except (ConfigError, ValueError) as exc:
        print(f"prepare_repository: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
