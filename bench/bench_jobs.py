"""Interactive first audio with and without long-form jobs running, same stack, same run.

Starts the real stack (tritonserver, RVC workers, API on loopback) on demo assets (``--workload``:
``budget``, whose LLM speaks every sentence to its token budget so cost follows length, or
``shipped``, the demo LLM that stops after a seed-dependent number of tokens: much quicker, and
comparable here because every phase sends the same seeds), then measures the first audio of ``/synthesize/stream`` (three sentences, as bench_api) in three phases,
alternated round by round so each sees the same machine state:

- ``jobs off``: the runner claims nothing (JOB_CONCURRENCY 0; it does not even query the database),
  the interactive path as it was before jobs existed;
- ``jobs idle``: the runner as shipped with no job queued (one small read query per second);
- ``two jobs``: two long jobs running (JOB_CONCURRENCY 2), cancelled at the end of the phase.

Prints p50/p95 per phase and the ratios against ``jobs off``.

    python bench/bench_jobs.py [--rounds 3] [--requests 6] [--workers 2] [--workload budget|shipped]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

import httpx  # noqa: E402
from bench_api import stream_bytes  # noqa: E402  (bench/ is sys.path[0]: the same request as bench_api)

import rvc  # noqa: E402,F401  (hides the repo's triton/ folder from torch)
from rvc.grpc.launcher import TritonServer  # noqa: E402
from rvc.grpc.model_repository import prepare_model_repository  # noqa: E402
from rvc.launch import triton_config  # noqa: E402
from tests.seed_cli import synthetic_reference as reference_clip  # noqa: E402
from tests.stack import serve_app, stack_settings, write_demo_assets  # noqa: E402

JOB_TEXT = " ".join(f"Background sentence number {index} keeps the job busy for a while." for index in range(60))
PHASES = ("jobs off", "jobs idle", "two jobs")


def first_audio(base_url: str, reference: bytes, seed: int) -> float:
    started = time.perf_counter()
    with stream_bytes(base_url, reference, seed) as chunks:
        buffer = b""
        for chunk in chunks:
            buffer += chunk
            if b"X-Sentence-Index" in buffer:
                return time.perf_counter() - started
    raise RuntimeError("the stream ended without a sentence part")


def start_jobs(base_url: str, reference: bytes, count: int) -> list[str]:
    ids = []
    for index in range(count):
        response = httpx.post(
            f"{base_url}/jobs", data={"text": JOB_TEXT, "seed": str(100 + index)},
            files={"reference_audio": ("ref.wav", reference, "audio/wav")}, timeout=60,
        )
        response.raise_for_status()
        ids.append(response.json()["id"])
    deadline = time.monotonic() + 300
    while not all(httpx.get(f"{base_url}/jobs/{job_id}").json()["sentences_done"] >= 1 for job_id in ids):
        if time.monotonic() > deadline:
            raise RuntimeError("the jobs did not start")
        time.sleep(0.2)
    return ids


def stop_jobs(base_url: str, ids: list[str]) -> None:
    for job_id in ids:
        httpx.delete(f"{base_url}/jobs/{job_id}", timeout=60)
    deadline = time.monotonic() + 120
    while httpx.get(f"{base_url}/status", timeout=60).json()["jobs"]["running_here"]:
        if time.monotonic() > deadline:
            raise RuntimeError("the cancelled jobs did not stop")
        time.sleep(0.2)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=6, help="interactive requests per phase and round")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--workload", choices=("budget", "shipped"), default="budget")
    args = parser.parse_args()
    os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] = "4096"  # inherited by the workers and tritonserver
    reference = reference_clip()
    results: dict[str, list[float]] = {phase: [] for phase in PHASES}
    with tempfile.TemporaryDirectory(prefix="bench_jobs-") as folder:
        root = Path(folder)
        assets = write_demo_assets(root / "assets_root", ends_speech=args.workload == "shipped")
        settings = stack_settings(root, assets, rvc_workers=args.workers, job_concurrency=2)
        repository = prepare_model_repository(settings.triton_model_repo, model_dir=settings.spark_model_dir)
        # a shared, busy box can take minutes to load the models: wait up to TRITON_STARTUP_TIMEOUT_S
        config = dataclasses.replace(triton_config(settings, repository), stop_timeout_s=10,
                                     startup_timeout_s=settings.triton_startup_timeout_s)
        triton = TritonServer(config).start()
        try:
            with serve_app(settings) as (app, base_url):
                runner = app.state.services.jobs
                # warm-up: each seed's sentence lengths once, so no phase pays oneDNN's kernel builds for a
                # new input length (bench_api's docstring: ~0.3 s per length per worker)
                for seed in range(args.requests + 1):
                    first_audio(base_url, reference, seed)
                for round_index in range(args.rounds):
                    for phase in PHASES:
                        runner.concurrency = 0 if phase == "jobs off" else 2  # an int the runner's loop reads
                        jobs = start_jobs(base_url, reference, 2) if phase == "two jobs" else []
                        for request in range(args.requests):
                            results[phase].append(first_audio(base_url, reference, 1 + request))
                            print(f"  {phase}: {results[phase][-1]:.3f} s", file=sys.stderr)
                        stop_jobs(base_url, jobs)
                    print(f"round {round_index + 1}/{args.rounds} done", file=sys.stderr)
        finally:
            triton.stop()
    samples = len(results["jobs off"])
    print(f"\n/synthesize/stream first audio, 3 sentences, {args.workload} workload, {args.workers} RVC workers, "
          f"{samples} requests per phase")
    print(f"{'phase':<10} {'p50 s':>7} {'p95 s':>7} {'p95 / jobs off':>15}")
    base_p95 = percentile(results["jobs off"], 0.95)
    for phase, values in results.items():
        p95 = percentile(values, 0.95)
        print(f"{phase:<10} {statistics.median(values):>7.3f} {p95:>7.3f} {p95 / base_p95:>15.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
