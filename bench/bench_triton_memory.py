"""Resident memory of the tritonserver stub processes with one Spark-TTS model vs both contracts.

One repository serves the offline ``spark_tts`` and the decoupled ``spark_tts_decoupled``; both are
python-backend models, so each stub process holds its own LLM. This starts the real tritonserver
twice on the same model folder (``streaming_model=False``, then True), waits until every model is
ready, sends one request to each LLM model (so lazily built state exists), and prints each stub's
VmRSS by model and the totals.

    python bench/bench_triton_memory.py                  # the tiny spark_tts fixture
    python bench/bench_triton_memory.py --full-size-llm  # demo codec + a 0.5B-shaped random LLM (~2 GB)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rvc.grpc import contract  # noqa: E402
from rvc.grpc.client import AsyncTritonSparkClient, TTSParams  # noqa: E402
from rvc.grpc.launcher import TritonServer, TritonServerConfig  # noqa: E402
from rvc.grpc.model_repository import prepare_model_repository  # noqa: E402
from tests.conftest import free_port  # noqa: E402

FIXTURE = Path(__file__).resolve().parent.parent.parent / "shared" / "fixtures" / "spark_tts_tiny" / "model"


def write_full_size_llm(out: Path) -> Path:
    """The demo folder (codec, tokenizer) with its LLM replaced by the official Qwen2-0.5B shape."""
    import torch
    from safetensors.torch import save_file
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from sparktts.demo import write_demo_model
    from sparktts.official import LLM_CONFIG

    if (out / "FULL_SIZE_LLM").is_file():
        return out
    write_demo_model(out, seed=0)
    llm = out / "LLM"
    config = json.loads((llm / "config.json").read_text())
    config.update(LLM_CONFIG)
    (llm / "config.json").write_text(json.dumps(config, indent=2))
    torch.manual_seed(0)
    lm = Qwen2ForCausalLM(Qwen2Config(**{k: v for k, v in config.items() if k not in ("architectures", "torch_dtype")}))
    weights = {k: v.contiguous() for k, v in lm.state_dict().items() if k != "lm_head.weight"}
    save_file(weights, str(llm / "model.safetensors"), metadata={"format": "pt"})
    (out / "FULL_SIZE_LLM").write_text("1\n")
    return out


def stub_memory(server: TritonServer) -> dict[str, int]:
    """model name -> VmRSS in kB of its stub process; "tritonserver" for the server itself."""
    found: dict[str, int] = {}
    for pid in server.group_members():
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        rss = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS"))
        name = Path(command[0].decode()).name
        if name == "triton_python_backend_stub":
            name = Path(command[1].decode()).parent.parent.name  # <repo>/<model>/1/model.py
        found[name] = found.get(name, 0) + rss
    return found


async def touch(url: str, models: list[str], wav: np.ndarray) -> None:
    async with AsyncTritonSparkClient(url) as client:
        params = TTSParams(seed=0, max_new_tokens=20)
        await client.inference("Memory check.", wav, None, params)
        if contract.SPARK_TTS_DECOUPLED in models:
            async for _ in client.stream_audio("Memory check.", wav, None, params):
                pass


def measure(model_dir: Path, scratch: Path, streaming_model: bool) -> dict[str, int]:
    repository = prepare_model_repository(
        scratch / f"repo_{streaming_model}", model_dir=model_dir, streaming_model=streaming_model, max_new_tokens=20
    )
    config = TritonServerConfig(
        model_repository=repository, grpc_port=free_port(), http_port=free_port(), metrics_port=free_port(),
        work_dir=scratch / f"server_{streaming_model}", stop_timeout_s=10, startup_timeout_s=1200,
    )
    with TritonServer(config) as server:
        models = [p.name for p in repository.iterdir() if p.is_dir()]
        rng = np.random.default_rng(0)
        asyncio.run(touch(server.grpc_url, models, (0.1 * rng.standard_normal(16000)).astype(np.float32)))
        return stub_memory(server)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, default=None, help="a Spark-TTS folder (default: the tiny fixture)")
    parser.add_argument("--full-size-llm", action="store_true", help="write and use a 0.5B-shaped random LLM")
    parser.add_argument("--scratch", type=Path, default=Path(tempfile.gettempdir()) / "bench_triton_memory")
    args = parser.parse_args()
    args.scratch.mkdir(parents=True, exist_ok=True)
    model_dir = args.model_dir or (write_full_size_llm(args.scratch / "spark_full_llm") if args.full_size_llm else FIXTURE)
    one = measure(model_dir, args.scratch, streaming_model=False)
    two = measure(model_dir, args.scratch, streaming_model=True)
    print(f"model folder: {model_dir}")
    print(f"{'process':<24}{'one model MB':>14}{'both models MB':>16}")
    for name in sorted(set(one) | set(two)):
        print(f"{name:<24}{one.get(name, 0) / 1024:>14.0f}{two.get(name, 0) / 1024:>16.0f}")
    total_one, total_two = sum(one.values()) / 1024, sum(two.values()) / 1024
    print(f"{'total':<24}{total_one:>14.0f}{total_two:>16.0f}   (+{total_two - total_one:.0f} MB for spark_tts_decoupled)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
