"""End-to-end and first-audio time of /synthesize/stream: overlapped pipeline vs sequential, same run.

Starts the real stack (tritonserver, RVC workers, API on loopback) on demo assets, then alternates
requests between the overlapped pipeline as the service runs it (TTS of sentence i+1 while RVC
converts i, up to workers + 1 sentences in flight) and a sequential one (lookahead 1: each sentence's TTS+RVC before the next TTS starts), so both
see the same machine state. Prints a table with the ratios.

Every timed request is first sent once untimed with the same seed (so the same sentence lengths
reach the same workers): oneDNN builds its convolution kernels once per new input length in
each worker (about 0.3 s, more than a whole demo-size conversion), and without this the mode
that happens to run a length first pays for both. For the same reason the workers' and Triton's
oneDNN primitive caches get room for every length of a round (the service bounds them to 256
entries to keep memory flat; then a sequential run, whose sentences all land on one worker,
evicts its own warm-up and pays the builds again while the overlapped one, spread over two
workers, does not).

    python bench/bench_api.py [--rounds 5] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

import httpx  # noqa: E402

import rvc  # noqa: E402,F401  (hides the repo's triton/ folder from torch)
from tests.stack import serve_app, stack_settings, start_triton, write_demo_assets  # noqa: E402

TEXT = "The first sentence sets the scene. The second one carries the story on. The third brings it home."


def reference_clip() -> bytes:
    import io

    import numpy as np
    import soundfile as sf

    rate = 16000
    t = np.arange(rate * 3) / rate
    wave = 0.3 * np.sin(2 * np.pi * 140 * t) * (1 + 0.5 * np.sin(2 * np.pi * 4 * t))
    buffer = io.BytesIO()
    sf.write(buffer, wave.astype(np.float32), rate, format="WAV")
    return buffer.getvalue()


def timed_stream(base_url: str, reference: bytes, seed: int) -> tuple[float, float, float]:
    """(time to first audio part, total time, the first sentence's TTS+RVC time)."""
    started = time.perf_counter()
    first = None
    stage_times: list[float] = []
    with httpx.stream(
        "POST", f"{base_url}/synthesize/stream", data={"text": TEXT, "seed": str(seed)},
        files={"reference_audio": ("ref.wav", reference, "audio/wav")}, timeout=600,
    ) as response:
        response.raise_for_status()
        buffer = b""
        for chunk in response.iter_bytes():
            if first is None:
                first = time.perf_counter() - started
            buffer += chunk
    total = time.perf_counter() - started
    for line in buffer.split(b"\r\n"):
        if line.startswith((b"X-TTS-Time:", b"X-RVC-Time:")):
            stage_times.append(float(line.split(b":")[1]))
    return first or total, total, stage_times[0] + stage_times[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] = "4096"  # inherited by the workers and tritonserver
    reference = reference_clip()
    with tempfile.TemporaryDirectory(prefix="bench_api-") as folder:
        root = Path(folder)
        settings = stack_settings(root, write_demo_assets(root / "assets_root"), rvc_workers=args.workers)
        triton = start_triton(settings)
        try:
            with serve_app(settings) as (app, base_url):
                pipeline = app.state.services.pipeline  # type: ignore[attr-defined]
                timed_stream(base_url, reference, 0)  # warm-up
                results: dict[str, list[tuple[float, float, float]]] = {"overlapped": [], "sequential": []}
                for round_index in range(args.rounds):
                    for mode, lookahead in (("overlapped", args.workers + 1), ("sequential", 1)):
                        pipeline.lookahead = lookahead
                        timed_stream(base_url, reference, round_index + 1)  # kernels for these lengths
                        results[mode].append(timed_stream(base_url, reference, round_index + 1))
        finally:
            triton.stop()
    print(f"\n/synthesize/stream, 3 sentences, demo assets, {args.workers} RVC workers, {args.rounds} rounds (medians)")
    print(f"{'pipeline':<12} {'first audio s':>14} {'total s':>9} {'first sentence TTS+RVC s':>26}")
    medians = {}
    for mode, runs in results.items():
        first = statistics.median(run[0] for run in runs)
        total = statistics.median(run[1] for run in runs)
        per_sentence = statistics.median(run[2] for run in runs)
        medians[mode] = (first, total, per_sentence)
        print(f"{mode:<12} {first:>14.3f} {total:>9.3f} {per_sentence:>26.3f}")
    ratios = [seq[1] / over[1] for over, seq in zip(results["overlapped"], results["sequential"], strict=True)]
    print("\nper round (same seed, so the same sentences), sequential / overlapped total: "
          + " ".join(f"{ratio:.2f}" for ratio in ratios))
    speedup = medians["sequential"][1] / medians["overlapped"][1]
    print(f"total speed-up, overlapped vs sequential: {speedup:.2f}x of the medians, "
          f"{statistics.median(ratios):.2f}x median of the rounds (target >= 1.3x)")
    print(f"first audio (overlapped) vs the first sentence's TTS+RVC (sequential run): "
          f"{medians['overlapped'][0]:.3f} s vs {medians['sequential'][2]:.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
