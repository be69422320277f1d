#!/usr/bin/env python3
"""Convert the Spark-TTS LLM (a Hugging Face Qwen2 checkpoint, ``<model_dir>/LLM``) to a
TensorRT-LLM checkpoint, ready for ``trtllm-build`` (run.sh stage 1).

    python triton/scripts/convert_checkpoint.py --model_dir pretrained_models/Spark-TTS-0.5B/LLM \
        --output_dir var/tllm_checkpoint_bfloat16 --dtype bfloat16

Needs the ``tensorrt_llm`` package (NVIDIA's TensorRT-LLM image); it is not a dependency of this
project, so the import happens here, at run time, with a clear message when it is missing.
Plain weight conversion only (no quantisation), one rank per tensor/pipeline-parallel shard.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_dir", type=Path, required=True, help="the Hugging Face LLM folder")
    parser.add_argument("--output_dir", type=Path, required=True, help="where the TensorRT-LLM checkpoint goes")
    parser.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="bfloat16")
    parser.add_argument("--tp_size", type=int, default=1, help="tensor-parallel ranks")
    parser.add_argument("--pp_size", type=int, default=1, help="pipeline-parallel ranks")
    args = parser.parse_args(argv)
    if not (args.model_dir / "config.json").is_file():
        print(f"convert_checkpoint: {args.model_dir} has no config.json (run stage 0 first)", file=sys.stderr)
        return 1
    try:
        from tensorrt_llm.mapping import Mapping
        from tensorrt_llm.models import QWenForCausalLM
    except ImportError as exc:
        print(f"convert_checkpoint: TensorRT-LLM is not installed ({exc}); use NVIDIA's trtllm image", file=sys.stderr)
        return 1
    world_size = args.tp_size * args.pp_size
    args.output_dir.mkdir(parents=True, exist_ok=True)
    for rank in range(world_size):
        mapping = Mapping(world_size=world_size, rank=rank, tp_size=args.tp_size, pp_size=args.pp_size)
        model = QWenForCausalLM.from_hugging_face(str(args.model_dir), args.dtype, mapping=mapping)
        model.save_checkpoint(str(args.output_dir), save_config=rank == 0)
        del model
    print(f"TensorRT-LLM checkpoint written to {args.output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
