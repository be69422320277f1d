"""End-to-end and first-audio time of /synthesize/stream: overlapped pipeline vs sequential, same run.

Starts the real stack (tritonserver, RVC workers, API on loopback) on demo assets, then alternates
requests between the overlapped pipeline as the service runs it (TTS of sentence i+1 while RVC
converts i, up to workers + 1 sentences in flight) and a sequential one (lookahead 1: each
sentence's TTS+RVC before the next TTS starts), so both see the same machine state. Prints a table
with the ratios, for two workloads:

- ``budget``: the demo Spark-TTS LLM written with ``ends_speech=False``, so every sentence is
  spoken to its token budget: a cost proportional to the sentence's length, as real speech is.
  This is the workload the targets are judged on: it measures the pipeline, not the dice.
- ``shipped``: the demo assets as the service ships them, whose random LLM stops after a
  seed-dependent number of tokens (0.1 to 7 s of audio per sentence). One long sentence among
  two near-empty ones leaves nothing to overlap, so the ratio swings from round to round.

Every timed ``shipped`` request is first sent once untimed with the same seed (so the same
sentence lengths reach the same workers): oneDNN builds its convolution kernels once per new
input length in each worker (about 0.3 s, more than a whole demo-size conversion), and without
this the mode that happens to run a length first pays for both. (``budget`` lengths do not
depend on the seed: one warm-up covers them.) For the same reason the workers' and Triton's
oneDNN primitive caches get room for every length of a round (the service bounds them to 256
entries to keep memory flat; then a sequential run, whose sentences all land on one worker,
evicts its own warm-up and pays the builds again while the overlapped one, spread over two
workers, does not).

``wait`` is first audio minus the first sentence's own TTS+RVC stage times (X-TTS-Time and
X-RVC-Time of part 0): request intake, queueing and encoding, i.e. what the pipeline adds.

    python bench/bench_api.py [--rounds 5] [--workers 2] [--workload budget shipped]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

import httpx  # noqa: E402

import rvc  # noqa: E402,F401  (hides the repo's triton/ folder from torch)
from tests.seed_cli import synthetic_reference as reference_clip  # noqa: E402  (bench_streaming imports it)
from tests.stack import serve_app, stack_settings, start_triton, write_demo_assets  # noqa: E402

TEXT = "The first sentence sets the scene. The second one carries the story on. The third brings it home."
MODES = ("overlapped", "sequential")


@dataclass(frozen=True)
class Timing:
    first_audio: float  # s from sending the request to the first byte of the first part
    total: float  # s to the end of the response
    tts: tuple[float, ...]  # each sentence's X-TTS-Time
    rvc: tuple[float, ...]  # each sentence's X-RVC-Time


@contextmanager
def stream_bytes(base_url: str, reference: bytes, seed: int) -> Iterator[Iterator[bytes]]:
    """The multipart body of one ``/synthesize/stream`` request for ``TEXT``, as it arrives.

    bench_jobs sends this same request, so the two benches' first-audio figures compare; leaving
    the ``with`` before the end closes the connection, which ends the request on the server.
    """
    with httpx.stream(
        "POST", f"{base_url}/synthesize/stream", data={"text": TEXT, "seed": str(seed)},
        files={"reference_audio": ("ref.wav", reference, "audio/wav")}, timeout=600,
    ) as response:
        response.raise_for_status()
        yield response.iter_bytes()


def timed_stream(base_url: str, reference: bytes, seed: int) -> Timing:
    started = time.perf_counter()
    first = None
    with stream_bytes(base_url, reference, seed) as chunks:
        buffer = b""
        for chunk in chunks:
            if first is None and b"X-Sentence-Index" in buffer + chunk:
                first = time.perf_counter() - started
            buffer += chunk
    total = time.perf_counter() - started
    lines = buffer.split(b"\r\n")

    def header(name: bytes) -> tuple[float, ...]:
        return tuple(float(line.split(b":")[1]) for line in lines if line.startswith(name + b":"))

    return Timing(first or total, total, header(b"X-TTS-Time"), header(b"X-RVC-Time"))


def run_workload(workload: str, rounds: int, workers: int, reference: bytes) -> dict[str, list[Timing]]:
    results: dict[str, list[Timing]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory(prefix="bench_api-") as folder:
        root = Path(folder)
        assets = write_demo_assets(root / "assets_root", ends_speech=workload == "shipped")
        settings = stack_settings(root, assets, rvc_workers=workers)
        triton = start_triton(settings)
        try:
            with serve_app(settings) as (app, base_url):
                pipeline = app.state.services.pipeline
                timed_stream(base_url, reference, 0)  # warm-up
                for round_index in range(rounds):
                    for mode, lookahead in zip(MODES, (workers + 1, 1), strict=True):
                        pipeline.lookahead = lookahead
                        if workload == "shipped":
                            timed_stream(base_url, reference, round_index + 1)  # kernels for these lengths
                        results[mode].append(timed_stream(base_url, reference, round_index + 1))
        finally:
            triton.stop()
    return results


def report(workload: str, results: dict[str, list[Timing]], workers: int) -> None:
    rounds = len(results["overlapped"])
    print(f"\n/synthesize/stream, 3 sentences, {workload} workload, {workers} RVC workers, {rounds} rounds (medians)")
    print(f"{'pipeline':<12} {'first audio s':>14} {'its TTS+RVC s':>14} {'wait s':>7} {'total s':>8} "
          f"{'TTS s/sentence':>15} {'RVC s/sentence':>15}")
    medians = {}
    for mode, runs in results.items():
        first = statistics.median(run.first_audio for run in runs)
        own = statistics.median(run.tts[0] + run.rvc[0] for run in runs)
        wait = statistics.median(run.first_audio - run.tts[0] - run.rvc[0] for run in runs)
        total = statistics.median(run.total for run in runs)
        tts = statistics.median(t for run in runs for t in run.tts)
        rvc_time = statistics.median(t for run in runs for t in run.rvc)
        medians[mode] = (first, total)
        print(f"{mode:<12} {first:>14.3f} {own:>14.3f} {wait:>7.3f} {total:>8.3f} {tts:>15.3f} {rvc_time:>15.3f}")
    pairs = list(zip(results["overlapped"], results["sequential"], strict=True))
    ratios = [seq.total / over.total for over, seq in pairs]
    print("per round (same seed, so the same sentences), sequential / overlapped total: "
          + " ".join(f"{ratio:.2f}" for ratio in ratios))
    firsts = [over.first_audio / seq.first_audio for over, seq in pairs]
    print("per round, overlapped / sequential first audio: " + " ".join(f"{ratio:.2f}" for ratio in firsts))
    speedup = medians["sequential"][1] / medians["overlapped"][1]
    print(f"total speed-up, overlapped vs sequential: {speedup:.2f}x of the medians, "
          f"{statistics.median(ratios):.2f}x median of the rounds (target >= 1.3x)")
    print(f"first audio, overlapped vs one sentence's TTS+RVC as a client sees it (the sequential first audio): "
          f"{medians['overlapped'][0]:.3f} s vs {medians['sequential'][0]:.3f} s, ratio "
          f"{medians['overlapped'][0] / medians['sequential'][0]:.2f} of the medians, "
          f"{statistics.median(firsts):.2f} median of the rounds (target <= 1.00)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--workload", nargs="+", choices=("budget", "shipped"), default=["budget", "shipped"])
    args = parser.parse_args()
    os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] = "4096"  # inherited by the workers and tritonserver
    reference = reference_clip()
    measured = {workload: run_workload(workload, args.rounds, args.workers, reference) for workload in args.workload}
    for workload, results in measured.items():
        report(workload, results, args.workers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
