"""What MP3 encoding costs on /v1/audio/speech: streaming MP3 vs streaming WAV, same requests, same run.

Starts the real stack (tritonserver, RVC workers, API on loopback) on demo assets and sends the same
3-sentence input with the same seed, alternating ``response_format`` mp3 and wav (``stream_format``
audio), so both see the same audio and the same machine state. Reports time to first byte and total
time per format, the end-to-end difference, and the encoder's own CPU time for that audio measured
in-process (StreamEncoder, one push per sentence), which is what MP3 adds on the server.

    python bench/bench_formats.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

import httpx  # noqa: E402
import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

import rvc  # noqa: E402,F401  (hides the repo's triton/ folder from torch)
from tests.stack import running_stack  # noqa: E402

TEXT = "The first sentence sets the scene. The second one carries the story on. The third brings it home."
FORMATS = ("mp3", "wav")


def timed_speech(base_url: str, fmt: str, seed: int) -> tuple[float, float, bytes]:
    """(seconds to the first body byte, seconds to the last, the body)."""
    started = time.perf_counter()
    first = None
    body = bytearray()
    request = {"model": "tts-1", "voice": "alloy", "input": TEXT, "response_format": fmt, "seed": seed}
    with httpx.stream("POST", f"{base_url}/v1/audio/speech", json=request, timeout=600) as response:
        response.raise_for_status()
        for chunk in response.iter_bytes():
            if first is None:
                first = time.perf_counter() - started
            body += chunk
    total = time.perf_counter() - started
    return first or total, total, bytes(body)


def encoder_seconds(wav_body: bytes, fmt: str, pieces: int = 3) -> float:
    """CPU time of StreamEncoder(fmt) for the audio of a WAV response, pushed in ``pieces`` parts."""
    from rvc.processing.formats import OutputSpec, StreamEncoder

    audio, rate = sf.read(io.BytesIO(wav_body), dtype="float32")
    started = time.process_time()
    encoder = StreamEncoder(OutputSpec(fmt), int(rate))  # type: ignore[arg-type]  # fmt comes from the format names this bench iterates over
    for part in np.array_split(audio, pieces):
        encoder.push(part)
    encoder.finish()
    return time.process_time() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    results: dict[str, dict[str, list[float]]] = {fmt: {"ttfb": [], "total": []} for fmt in FORMATS}
    encode: dict[str, list[float]] = {fmt: [] for fmt in FORMATS}
    audio_seconds = []
    with tempfile.TemporaryDirectory(prefix="bench_formats-") as folder:
        with running_stack(Path(folder)) as stack:
            for fmt in FORMATS:
                timed_speech(stack.base_url, fmt, 0)  # warm-up: model caches, encoders, speaker cache
            for round_index in range(args.rounds):
                order = FORMATS if round_index % 2 == 0 else FORMATS[::-1]
                wav_body = b""
                for fmt in order:
                    ttfb, total, body = timed_speech(stack.base_url, fmt, 100 + round_index)
                    results[fmt]["ttfb"].append(ttfb)
                    results[fmt]["total"].append(total)
                    if fmt == "wav":
                        wav_body = body
                audio_seconds.append(sf.info(io.BytesIO(wav_body)).frames / sf.info(io.BytesIO(wav_body)).samplerate)
                for fmt in FORMATS:
                    encode[fmt].append(encoder_seconds(wav_body, fmt))
    median = statistics.median
    print(f"/v1/audio/speech, stream_format=audio, 3 sentences, {args.rounds} rounds (medians), "
          f"{median(audio_seconds):.2f} s of audio per request")
    print("| format | time to first byte (s) | total (s) | encoder CPU per request (s) | encoder share of total |")
    print("| --- | --- | --- | --- | --- |")
    for fmt in FORMATS:
        total = median(results[fmt]["total"])
        print(f"| {fmt} | {median(results[fmt]['ttfb']):.3f} | {total:.3f} | {median(encode[fmt]):.4f} | "
              f"{100 * median(encode[fmt]) / total:.2f}% |")
    wav_total = median(results["wav"]["total"])
    paired = [mp3 - wav for mp3, wav in zip(results["mp3"]["total"], results["wav"]["total"], strict=True)]
    print(f"\nend to end, paired by round (same seed, same audio): median mp3 - wav total = {median(paired):+.3f} s "
          f"({100 * median(paired) / wav_total:+.1f}% of wav's total; run-to-run noise included)")
    print(f"MP3 encoder CPU minus WAV's: {100 * (median(encode['mp3']) - median(encode['wav'])) / wav_total:.2f}% "
          "of wav's total (an upper bound: all but the last sentence's encoding overlaps the next sentence's TTS)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
