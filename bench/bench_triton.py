"""Spark-TTS through the real tritonserver vs ``SparkTTS`` in-process: requests/s and time to first chunk.

Both sides run the same requests (same texts, reference, seeds: the outputs are bit-identical) at
each concurrency level, streaming, so the difference is what Triton costs: gRPC, the python
backend's IPC, BLS calls between the three models, and their queues. In-process concurrency uses
threads over one model; Triton uses one ``AsyncTritonSparkClient`` channel and the streaming
repository (each request on its own BLS worker thread). Every torch runs one intra-op thread.

    python bench/bench_triton.py --tiny                       # tiny demo model, quick
    python bench/bench_triton.py --max-new-tokens 60          # full-size random weights (~4 GB on disk)
    python bench/bench_triton.py --server 127.0.0.1:8001      # only measure an already running server
    python bench/bench_triton.py --server 127.0.0.1:8001 --mode offline --json out.json

``--mode``: streaming (the default) reads each request as a stream of chunks from the decoupled
model (``spark_tts`` of a streaming repository, else ``spark_tts_decoupled``), and first chunk is
the time to the first one, as the official ``client_grpc.py --mode streaming`` measures it;
offline sends one ``infer`` to ``spark_tts`` and waits for the whole answer (first chunk = latency).
Tokens/s counts the semantic tokens behind the audio (BiCodec's 50 per second of audio) over the
level's wall time; RTF is wall time over seconds of audio, the official definition.

Each level runs the sides alternately (in-process then Triton, then Triton then in-process, ...)
so that load drifting on a shared machine hits both alike. Besides wall-clock figures it reports
CPU seconds per request, summed over every process involved (this one, tritonserver and its
stubs): on an oversubscribed box that is the steadier measure of what Triton adds.

Full size is the official architecture (Qwen2 0.5B with a 166000-row head, wav2vec2 xlsr-53,
BiCodec at 625 MB) with random weights; the LLM's tied head is biased towards semantic tokens
(and away from the stop token) so that every request yields exactly ``--max-new-tokens`` semantic
tokens, which makes the work per request fixed and streaming chunks reachable.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # official_runtime, also when imported as bench.bench_triton

import rvc  # noqa: E402,F401  (installs the triton-folder guard before torch loads)

# isort: split
import torch  # noqa: E402
from official_runtime import official_summary  # noqa: E402

from rvc.grpc import contract  # noqa: E402
from rvc.grpc.client import AsyncTritonSparkClient, TTSParams  # noqa: E402

if TYPE_CHECKING:
    from rvc.grpc.launcher import TritonServer
    from sparktts.inference import SparkTTS

TEXT = "Spark TTS on Triton, measured against the same model in process."
SAMPLE_RATE = 16000
SEMANTIC_TOKENS_PER_S = 50  # BiCodec: one semantic token per 320 samples at 16 kHz
FULL_SIZE_VERSION = "bench_triton full-size random weights v2\n"  # bump when write_full_size_model changes


@dataclass(frozen=True)
class Sample:
    first_chunk_s: float
    total_s: float
    audio_s: float


@dataclass(frozen=True)
class Level:
    side: str
    mode: str  # "streaming" or "offline" (see the module docstring)
    concurrency: int
    requests: int
    wall_s: float
    requests_per_s: float
    first_chunk_p50_ms: float
    latency_mean_ms: float
    rtf: float
    tokens_per_s: float  # semantic tokens behind the audio (50 per second) over the wall time
    cpu_s_per_request: float | None  # all processes involved (client + server + stubs); None if unknown


def group_cpu_seconds(pids: list[int]) -> float:
    """utime + stime of the given processes (tritonserver and its stubs), from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / ticks


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ------------------------------------------------------------------------------------- model folders
def write_full_size_model(out: Path, seed: int = 0) -> Path:
    """The official architecture with random weights, in the official layout (see module docstring)."""
    import yaml
    from safetensors.torch import save_file
    from transformers import Qwen2Config, Qwen2ForCausalLM, Wav2Vec2Config, Wav2Vec2Model

    from sparktts import prompts
    from sparktts.bicodec import BiCodec
    from sparktts.checkpoint import checkpoint_state
    from sparktts.config import BiCodecConfig
    from sparktts.demo import write_demo_model
    from sparktts.official import BICODEC_CONFIG, LLM_CONFIG, WAV2VEC2_CONFIG

    write_demo_model(out, seed=seed)  # layout, top config and the tokenizer; the weights are replaced below
    torch.manual_seed(seed)
    bicodec = BICODEC_CONFIG
    (out / "BiCodec" / "config.yaml").write_text(yaml.safe_dump(bicodec, sort_keys=False))
    model = BiCodec(BiCodecConfig.from_dict(bicodec), with_postnet=True)
    state = {k: v.contiguous() for k, v in checkpoint_state(model).items() if not k.startswith("mel_transformer.")}
    save_file(state, str(out / "BiCodec" / "model.safetensors"))
    del model, state

    w2v = out / "wav2vec2-large-xlsr-53"
    (w2v / "pytorch_model.bin").unlink(missing_ok=True)
    Wav2Vec2Model(Wav2Vec2Config(**WAV2VEC2_CONFIG)).save_pretrained(w2v)

    llm = out / "LLM"
    config = json.loads((llm / "config.json").read_text())
    config.update(LLM_CONFIG)
    (llm / "config.json").write_text(json.dumps(config, indent=2))
    lm = Qwen2ForCausalLM(Qwen2Config(**{k: v for k, v in config.items() if k not in ("architectures", "torch_dtype")}))
    tokenizer_ids = json.loads((llm / "tokenizer.json").read_text())["added_tokens"]
    by_name = {entry["content"]: entry["id"] for entry in tokenizer_ids}
    favoured = [by_name[prompts.semantic_token(i)] for i in range(prompts.NUM_SEMANTIC_CODES)]
    favoured.append(by_name[prompts.END_GLOBAL])  # the last prompt token when there is no transcript
    with torch.no_grad():
        # Channel 0 of the residual stream carries +1 after a favoured token and -1 otherwise (no layer
        # writes to it); the final norm amplifies it, so the tied head scores favoured rows far above
        # the rest whatever the random part of the hidden state: semantic tokens only, never a stop.
        embed = lm.model.embed_tokens.weight
        embed[:, 0] = -1.0
        embed[favoured, 0] = 1.0
        for layer in lm.model.layers:
            layer.self_attn.o_proj.weight[0].zero_()
            layer.mlp.down_proj.weight[0].zero_()
        lm.model.norm.weight[0] = 200.0
    weights = {k: v.contiguous() for k, v in lm.state_dict().items() if k != "lm_head.weight"}
    save_file(weights, str(llm / "model.safetensors"), metadata={"format": "pt"})
    (out / "FULL_SIZE").write_text(FULL_SIZE_VERSION)
    return out


def model_folder(args: argparse.Namespace) -> Path:
    if args.model_dir is not None:
        return args.model_dir
    from sparktts.demo import write_demo_model

    root = Path(args.scratch)
    if args.tiny:
        folder = root / "spark_tiny"
        return folder if (folder / "config.yaml").is_file() else write_demo_model(folder, seed=0)
    folder = root / "spark_full"
    marker = folder / "FULL_SIZE"
    if not marker.is_file() or marker.read_text() != FULL_SIZE_VERSION:
        print(f"writing full-size random weights to {folder} (a few minutes) ...", flush=True)
        write_full_size_model(folder)
    return folder


def reference_clip(seconds: float = 4.0) -> np.ndarray:
    """A 16 kHz harmonic clip with a slow pitch glide (the tokenizer only needs a voiced signal)."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    phase = 2 * np.pi * np.cumsum(140 + 30 * np.sin(2 * np.pi * 0.5 * t)) / SAMPLE_RATE
    return (0.3 * sum(np.sin(k * phase) / k for k in range(1, 8))).astype(np.float32)


# ------------------------------------------------------------------------------------- the two sides
def run_in_process(tts: SparkTTS, reference: np.ndarray, seeds: list[int], concurrency: int, max_new_tokens: int) -> list[Sample]:
    from sparktts.llm import GenerationParams

    def one(seed: int) -> Sample:
        start = time.perf_counter()
        first, samples = None, 0
        for chunk in tts.stream(TEXT, reference, "", params=GenerationParams(seed=seed, max_new_tokens=max_new_tokens)):
            first = first if first is not None else time.perf_counter() - start
            samples += chunk.size
        return Sample(first or 0.0, time.perf_counter() - start, samples / SAMPLE_RATE)

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return list(pool.map(one, seeds))


async def serving_model(url: str, mode: str) -> str:
    """The model a ``mode`` run asks: offline ``spark_tts``; streaming the decoupled one (``spark_tts``
    itself in a streaming repository, else ``spark_tts_decoupled`` beside the offline one)."""
    if mode == "offline":
        return contract.SPARK_TTS
    async with AsyncTritonSparkClient(url, timeout_s=60) as client:
        return contract.SPARK_TTS if (await client.model_info()).decoupled else contract.SPARK_TTS_DECOUPLED


async def run_triton(url: str, reference: np.ndarray, seeds: list[int], concurrency: int,
                     max_new_tokens: int, mode: str = "streaming") -> list[Sample]:
    gate = asyncio.Semaphore(concurrency)
    model = await serving_model(url, mode)
    async with AsyncTritonSparkClient(url, model_name=model, timeout_s=3600) as client:
        async def one(seed: int) -> Sample:
            async with gate:
                start = time.perf_counter()
                params = TTSParams(seed=seed, max_new_tokens=max_new_tokens)
                if mode == "offline":
                    audio, _ = await client.inference(TEXT, reference, "", params)
                    total = time.perf_counter() - start
                    return Sample(total, total, audio.size / SAMPLE_RATE)
                first, samples = None, 0
                async for chunk in client.stream(TEXT, reference, "", params):
                    first = first if first is not None else time.perf_counter() - start
                    samples += chunk.size
                return Sample(first or 0.0, time.perf_counter() - start, samples / SAMPLE_RATE)

        return list(await asyncio.gather(*(one(seed) for seed in seeds)))


def summarize(side: str, mode: str, concurrency: int, samples: list[Sample], wall_s: float,
              cpu_s: float | None) -> Level:
    audio = sum(s.audio_s for s in samples)
    return Level(
        side=side, mode=mode, concurrency=concurrency, requests=len(samples), wall_s=wall_s,
        requests_per_s=len(samples) / wall_s,
        first_chunk_p50_ms=1000 * float(np.median([s.first_chunk_s for s in samples])),
        latency_mean_ms=1000 * float(np.mean([s.total_s for s in samples])),
        rtf=wall_s / audio if audio else float("inf"),
        tokens_per_s=audio * SEMANTIC_TOKENS_PER_S / wall_s,
        cpu_s_per_request=None if cpu_s is None else cpu_s / len(samples),
    )


@dataclass
class Side:
    """One way of running requests: ``run(seeds, concurrency) -> samples``; ``cpu()`` -> CPU seconds so far."""

    name: str
    run: Callable[[list[int], int], list[Sample]]
    cpu: Callable[[], float | None]
    mode: str = "streaming"


def measure(sides: list[Side], levels: list[int], per_level: int, rounds: int) -> list[Level]:
    """Per level, alternate the sides (A B, then B A, ...) so that load drifting on a shared machine
    hits both alike; each side's samples, wall time and CPU time are summed over the rounds."""
    results = []
    for concurrency in levels:
        seeds = list(range(1000 * concurrency, 1000 * concurrency + max(per_level, concurrency)))
        totals: dict[str, tuple[list[Sample], float, float | None]] = {side.name: ([], 0.0, 0.0) for side in sides}
        for round_index in range(rounds):
            for side in sides if round_index % 2 == 0 else sides[::-1]:
                samples, wall, cpu = totals[side.name]
                cpu_before, start = side.cpu(), time.perf_counter()
                samples = samples + side.run(seeds, concurrency)
                wall += time.perf_counter() - start
                after = side.cpu()
                cpu = None if after is None or cpu is None or cpu_before is None else cpu + after - cpu_before
                totals[side.name] = (samples, wall, cpu)
        for side in sides:
            level = summarize(side.name, side.mode, concurrency, *totals[side.name])
            results.append(level)
            print(f"  {side.name} {side.mode} c={concurrency}: {level.requests_per_s:.3f} req/s, "
                  f"{level.tokens_per_s:.1f} tokens/s, RTF {level.rtf:.3f}, first chunk "
                  f"{level.first_chunk_p50_ms:.0f} ms, CPU {level.cpu_s_per_request or float('nan'):.2f} s/request",
                  flush=True)
    return results


def start_server(model_dir: Path, scratch: Path, threads: int) -> TritonServer:
    from rvc.errors import TritonStartError
    from rvc.grpc.launcher import TritonServer, TritonServerConfig
    from rvc.grpc.model_repository import prepare_model_repository

    repository = prepare_model_repository(scratch / "bench_model_repo", model_dir=model_dir, mode="streaming",
                                          request_workers=8, speaker_cache_size=0)
    for attempt in range(3):
        config = TritonServerConfig(model_repository=repository, grpc_port=free_port(), http_port=free_port(),
                                    metrics_port=free_port(), startup_timeout_s=1200, torch_threads=threads)
        try:
            return TritonServer(config).start()
        except TritonStartError as exc:  # another process took a port between choosing and binding it
            if "already in use" not in str(exc) or attempt == 2:
                raise
    raise AssertionError("unreachable")


def table(rows: list[Level]) -> str:
    by_key = {(r.side, r.concurrency): r for r in rows}
    lines = ["| concurrency | req/s in-process | req/s Triton | throughput cost | first chunk p50 in-process "
             "| first chunk p50 Triton | first-chunk cost | CPU s/request in-process | CPU s/request Triton "
             "| CPU cost | Triton RTF |", "|---|---|---|---|---|---|---|---|---|---|---|"]

    def cost(ours: float | None, theirs: float | None) -> str:
        return "-" if ours is None or theirs is None else f"{100 * (ours / theirs - 1):+.1f}%"

    def value(number: float | None, fmt: str) -> str:
        return "-" if number is None else format(number, fmt)

    for concurrency in sorted({r.concurrency for r in rows}):
        local, served = by_key.get(("in-process", concurrency)), by_key.get(("triton", concurrency))
        if served is None:
            continue
        local_rps = local.requests_per_s if local else None
        local_first = local.first_chunk_p50_ms if local else None
        local_cpu = local.cpu_s_per_request if local else None
        lines.append(" | ".join([
            f"| {concurrency}", value(local_rps, ".3f"), f"{served.requests_per_s:.3f}",
            cost(local_rps, served.requests_per_s),
            value(local_first, ".0f") + " ms", f"{served.first_chunk_p50_ms:.0f} ms",
            cost(served.first_chunk_p50_ms, local_first),
            value(local_cpu, ".2f"), value(served.cpu_s_per_request, ".2f"),
            cost(served.cpu_s_per_request, local_cpu), f"{served.rtf:.3f} |",
        ]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="the tiny demo model instead of full-size weights")
    parser.add_argument("--model-dir", type=Path, default=None, help="an existing Spark-TTS folder to use")
    parser.add_argument("--server", default=None, help="measure this running server only (host:grpc_port)")
    parser.add_argument("--mode", choices=("streaming", "offline"), default="streaming",
                        help="Triton side: a stream from the decoupled model, or one offline infer per request")
    parser.add_argument("--concurrency", default="1,2,4", help="comma-separated levels")
    parser.add_argument("--requests", type=int, default=4, help="requests per level (at least the level)")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="LLM tokens per request")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads on both sides")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per level (A B, B A, ...)")
    parser.add_argument("--scratch", default=str(Path(tempfile.gettempdir()) / "bench_triton"))
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    levels = [int(part) for part in args.concurrency.split(",") if part]
    tokens = args.max_new_tokens or (300 if args.tiny else 60)
    torch.set_num_threads(args.threads)
    reference = reference_clip()
    rows: list[Level] = []

    def triton_side(url: str, server: TritonServer | None = None) -> Side:
        def run(seeds: list[int], concurrency: int) -> list[Sample]:
            return asyncio.run(run_triton(url, reference, seeds, concurrency, tokens, args.mode))

        def cpu() -> float | None:
            return None if server is None else group_cpu_seconds(server.group_members()) + time.process_time()

        run([1], 1)  # warm-up
        return Side("triton", run, cpu, args.mode)

    if args.server:
        rows += measure([triton_side(args.server)], levels, args.requests, 1)
    else:
        from sparktts.inference import SparkTTS

        model_dir = model_folder(args)
        print(f"model {model_dir}, {tokens} tokens per request, levels {levels}, {args.rounds} rounds", flush=True)
        tts = SparkTTS.from_pretrained(model_dir)
        local = Side("in-process", lambda seeds, c: run_in_process(tts, reference, seeds, c, tokens), time.process_time)
        local.run([1], 1)  # warm-up
        server = start_server(model_dir, Path(args.scratch), args.threads)
        try:
            rows += measure([local, triton_side(server.grpc_url, server)], levels, args.requests, args.rounds)
        finally:
            server.stop()
    print()
    print(table(rows))
    print()
    print(official_summary())
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
