"""gpu_check.py step 7: tokens/s, RTF and first-chunk latency, offline and streaming, beside the
official runtime's L20 figures (``official_runtime.py``).

It serves an offline repository (``spark_tts`` answers whole requests, ``spark_tts_decoupled``
streams, as in the service) from its own tritonserver and runs ``bench_triton.py --server`` against
it once per mode, in a child process that writes its levels as JSON. The official run used the
real model as a TensorRT-LLM engine on an L20; this one the python backend on whatever card is
here, and the demo weights unless a real Spark-TTS-0.5B is given: the table puts them side by
side, it does not make them comparable.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bench_triton import free_port
from official_runtime import OFFICIAL_L20, comparison_table, official_summary

__all__ = ["measure_beside_official"]

BENCH_TRITON = Path(__file__).resolve().parent / "bench_triton.py"


def measure_beside_official(
    model_dir: Path,
    device: str,
    scratch: Path,
    *,
    budget_s: float,
    levels: Sequence[int] = (1, 4),
    requests: int = 4,
    max_new_tokens: int = 300,
) -> str:
    """Run both modes at ``levels`` on ``device`` within ``budget_s``; print the table, return a summary.

    max_new_tokens: 300 tokens are 6 s of audio, about the official prompts' mean (169 s / 26).
    """
    from rvc.grpc.launcher import TritonServer, TritonServerConfig
    from rvc.grpc.model_repository import prepare_model_repository

    deadline = time.monotonic() + budget_s
    repository = prepare_model_repository(scratch / "throughput_repo", model_dir=model_dir, mode="offline",
                                          device="cuda" if device == "cuda" else "cpu", dtype="auto",
                                          speaker_cache_size=0)
    config = TritonServerConfig(model_repository=repository, grpc_port=free_port(), http_port=free_port(),
                                metrics_port=free_port(), work_dir=scratch / "throughput_triton",
                                startup_timeout_s=max(30.0, min(180.0, budget_s / 3)), cpu_only=device != "cuda")
    rows: list[dict[str, object]] = []
    with TritonServer(config) as server:
        for index, mode in enumerate(("offline", "streaming")):
            output = scratch / f"throughput_{mode}.json"
            left = deadline - time.monotonic()
            run = subprocess.run(
                [sys.executable, str(BENCH_TRITON), "--server", server.grpc_url, "--mode", mode,
                 "--concurrency", ",".join(str(level) for level in levels), "--requests", str(requests),
                 "--rounds", "1", "--max-new-tokens", str(max_new_tokens), "--json", str(output)],
                capture_output=True, text=True, timeout=max(10.0, left / (2 - index)), check=False,
            )
            if run.returncode != 0:
                raise RuntimeError(f"bench_triton --mode {mode} failed:\n{run.stdout[-1500:]}\n{run.stderr[-2500:]}")
            print("\n".join(line for line in run.stdout.splitlines() if line.startswith("  triton")), flush=True)
            rows += json.loads(output.read_text())
    print(official_summary())
    print(comparison_table(rows), flush=True)
    return _summary(rows)


def _summary(rows: Sequence[dict[str, object]]) -> str:
    """The offline RTF and streaming first chunk at concurrency 1 (and the highest level) vs the official."""
    official = {(row.mode, row.concurrency): row for row in OFFICIAL_L20}
    parts = []
    for row in rows:
        mode, concurrency = str(row["mode"]), int(str(row["concurrency"]))
        theirs = official.get((mode, concurrency))
        if mode == "offline":
            ours, figure = f"RTF {float(str(row['rtf'])):.4f}", f"{theirs.rtf:.4f}" if theirs else "-"
        else:
            ours = f"first chunk {float(str(row['first_chunk_p50_ms'])):.0f} ms"
            figure = f"{theirs.first_chunk_p50_ms:.2f} ms" if theirs else "-"
        parts.append(f"{mode} c={concurrency}: {ours}, {float(str(row['tokens_per_s'])):.0f} tokens/s "
                     f"(official L20 {figure})")
    return "; ".join(parts)
