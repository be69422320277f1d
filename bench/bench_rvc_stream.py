"""Streamed RVC against offline on the same audio: SNR, clicks at block joins, per-block real-time factor.

For each stream geometry (first block / steady block / context seconds) the same synthetic voice is converted offline
(``VoiceConverter.convert``) and through ``StreamConverter`` in deterministic mode, one torch
thread. Printed per row: SNR of the stream against offline (with the default envelope mix and
with it off), the largest sample jump at block joins over the largest inside blocks (a click
detector: <= 1.5 is no click), mean and worst compute seconds per step over the step's new input
(RTF per step; < 1 keeps up with real time) and the first audio's latency (one block plus the
first step's compute). ``--full-size`` uses bench_rvc.py's random full-size models instead of
the tiny demo voice.

    python bench/bench_rvc_stream.py --seconds 4 --full-size --geometries 0.25:0.25:1.0 0.25:0.5:1.0 0.25:1.0:1.0
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import rvc  # noqa: E402,F401  (installs the triton-folder guard before torch loads)

# isort: split
import torch  # noqa: E402
from bench_rvc import synthetic_voice, write_full_size_assets  # noqa: E402

from rvc.infer.converter import ConversionParams, ConverterAssets, VoiceConverter  # noqa: E402
from rvc.infer.demo_assets import write_demo_rvc_assets  # noqa: E402
from rvc.infer.stream import StreamConfig, open_stream  # noqa: E402

SAMPLE_RATE = 16000


def snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    length = min(reference.shape[0], estimate.shape[0])
    error = reference[:length] - estimate[:length]
    return float(10 * np.log10(np.sum(reference[:length] ** 2) / max(np.sum(error**2), 1e-20)))


def join_ratio(audio: np.ndarray, joins: np.ndarray) -> float:
    """Largest sample jump at the given join positions (first sample of each new step) over the largest elsewhere."""
    jumps = np.abs(np.diff(audio))
    joins = np.asarray(joins) - 1
    joins = joins[(joins >= 0) & (joins < jumps.shape[0])]
    inside = np.ones(jumps.shape[0], dtype=bool)
    inside[joins] = False
    return float(jumps[joins].max() / jumps[inside].max())


def output_joins(config: StreamConfig, frame_out: int, output_samples: int) -> np.ndarray:
    """Where each step's output begins in a stream's output (after the lag it drops once)."""
    frames = -(-output_samples // frame_out) + config.lag_frames + config.steady_block_frames
    ends = np.cumsum(config.step_sizes(frames)) * frame_out - config.lag_frames * frame_out
    return ends[ends < output_samples]


def stream_once(
    converter: VoiceConverter, audio: np.ndarray, params: ConversionParams, config: StreamConfig
) -> tuple[np.ndarray, float, np.ndarray, dict[str, float]]:
    """Feeds one step at a time; (output, join ratio, each step's seconds per second of new input, per-step stages)."""
    stream = open_stream(converter, "bench", params, config)
    pieces: list[np.ndarray] = []
    step_rtf: list[float] = []
    start = 0
    while start < audio.shape[0]:
        size = stream.next_step_samples
        steps, started = stream.steps, time.perf_counter()
        pieces.append(stream.feed(audio[start : start + size]))
        if stream.steps > steps:  # a whole step ran
            step_rtf.append((time.perf_counter() - started) / (size / SAMPLE_RATE))
        start += size
    pieces.append(stream.flush())
    out = np.concatenate(pieces)
    ratio = join_ratio(out, output_joins(config, stream.frame_out, out.shape[0]))
    per_step = {stage: seconds / stream.steps for stage, seconds in stream.timings.items()}
    return out, ratio, np.array(step_rtf), per_step


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--full-size", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--geometries", nargs="+", default=["0.25:0.25:1.0", "0.25:0.5:1.0", "0.25:1.0:1.0", "0.25:0.5:0.5", "0.25:0.25:2.5"],
        help="block:steady_block:context seconds",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench_rvc_stream_") as scratch:
        folder = Path(scratch)
        if args.full_size:
            paths = write_full_size_assets(folder)
        else:
            paths = write_demo_rvc_assets(folder / "weights", folder / "assets", seed=0)
        converter = VoiceConverter(ConverterAssets(paths["hubert"], paths["rmvpe"]))
        converter.load_voice("bench", paths["voice"], paths["index"])
        audio = 0.8 * synthetic_voice(args.seconds)
        plain = ConversionParams(deterministic=True, rms_mix_rate=1.0)
        mixed = ConversionParams(deterministic=True)
        converter.convert("bench", audio[:SAMPLE_RATE], SAMPLE_RATE, mixed)  # first-call costs
        started = time.perf_counter()
        offline_mixed = converter.convert("bench", audio, SAMPLE_RATE, mixed).audio
        offline_rtf = (time.perf_counter() - started) / args.seconds
        offline_plain = converter.convert("bench", audio, SAMPLE_RATE, plain).audio
        kind = "full-size v2 40k" if args.full_size else "tiny demo"
        print(f"{kind}, {args.seconds:g} s input, {args.threads} thread(s); offline RTF {offline_rtf:.3f}")
        print(
            "block steady context  SNR mix dB  SNR nomix dB  join/inside  RTF/step mean  max  first audio s  stages"
        )
        for geometry in args.geometries:
            block, steady, context = (float(value) for value in geometry.split(":"))
            config = StreamConfig(block=block, steady_block=steady, context=context)
            out_mixed, ratio, steps, timings = stream_once(converter, audio, mixed, config)
            out_plain, ratio_plain, _, _ = stream_once(converter, audio, plain, config)
            stages = " ".join(f"{stage}={seconds:.3f}" for stage, seconds in timings.items())
            print(
                f"{block:5.2f} {steady:6.2f} {context:7.2f}  {snr_db(offline_mixed, out_mixed):10.2f}  "
                f"{snr_db(offline_plain, out_plain):12.2f}  {max(ratio, ratio_plain):11.2f}  "
                f"{steps.mean():13.3f}  {steps.max():5.3f}  {block * (1 + steps[0]):13.3f}  {stages}",
                flush=True,
            )


if __name__ == "__main__":
    main()
