#!/usr/bin/env python3
"""One utterance through a running Spark-TTS Triton server (run.sh stage 5).

    python triton/scripts/synthesize.py --reference prompt.wav --reference-text "..." \
        --text "Hello from Spark-TTS on Triton." --output var/run/triton_single.wav [--server 127.0.0.1:8001]

Streams when the server's repository is the streaming variant (prints each chunk as it arrives)
and writes the joined 16 kHz waveform as PCM_16. The reference may have any sample rate: the
server resamples it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import soundfile as sf

from rvc.errors import VoiceError
from rvc.grpc.client import TritonSparkClient, TTSParams, join_chunks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", default="127.0.0.1:8001", help="host:grpc_port")
    parser.add_argument("--reference", type=Path, required=True, help="reference audio file (any rate)")
    parser.add_argument("--reference-text", default=None, help="its transcript (omit if unknown)")
    parser.add_argument("--text", default="Hello from Spark-TTS on Triton.")
    parser.add_argument("--output", type=Path, default=Path("triton_single.wav"))
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    audio, rate = sf.read(args.reference, dtype="float32", always_2d=True)
    started = time.perf_counter()
    try:
        with TritonSparkClient(args.server) as client:
            chunks = []
            for chunk in client.stream(args.text, audio[:, 0], args.reference_text, TTSParams(seed=args.seed),
                                       reference_sample_rate=rate):
                chunks.append(chunk)
                print(f"chunk {len(chunks)}: {chunk.size} samples after {time.perf_counter() - started:.2f} s")
            wav = join_chunks(chunks, client.model_info().overlap_samples)
    except VoiceError as exc:
        print(f"synthesize: {exc}", file=sys.stderr)
        return 1
    args.output.parent.mkdir(parents=True, exist_ok=True)
    sf.write(args.output, wav, 16000, subtype="PCM_16")
    print(f"{wav.size / 16000:.2f} s of audio in {time.perf_counter() - started:.2f} s written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
