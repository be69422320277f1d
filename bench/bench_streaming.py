"""Time to first audio, total time, RTF and underruns of /synthesize/sse: ``sentence`` vs ``chunk``, same run.

Starts the real stack (tritonserver, RVC workers, API on loopback) on demo assets with the
``budget`` workload of ``bench_api.py`` (the demo Spark-TTS LLM speaks every sentence to its token
budget, so the cost follows the text) and a text of three sentences of 15-25 words (``--sentences``). At each
concurrency (1, 2, 4, 8 clients at once) and in each round, ``sentence`` and ``chunk`` requests
alternate, so both modes see the same machine state. Each client reads the SSE stream as it
arrives (raw PCM, so a sample count is a byte count) and records when each piece of audio came.

Per mode and concurrency it prints first audio p50/p95, total time, RTF (total / audio seconds)
and the underrun a real-time player would hear (``streaming_stats.playback``: it starts at the
first sample and stalls when the next has not arrived; "continuity OK" = no stall over 100 ms),
then the chunk/sentence ratios and the issue's targets with pass/fail, and plots first audio
vs concurrency (``--plot``). A server without chunk mode (400 for ``granularity=chunk``, or a
``start`` event that does not say ``"granularity": "chunk"``) is reported as such and the run
goes on in ``sentence`` mode only.

``--click`` adds the quality check: one sentence of the same TTS (``/tts``, 16 kHz) converted by
one full-size random-weight voice (``bench_rvc.write_full_size_assets``, about 850 MB written to
a temporary folder) offline and through ``rvc.infer.stream.open_stream`` in-process; prints the
stream's SNR against offline and the largest sample jump at block joins over the largest inside
blocks (``bench_rvc_stream``'s click detector: <= 1.5 is no click).

    python bench/bench_streaming.py [--rounds 3] [--concurrency 1 2 4 8] [--click]
    python bench/bench_streaming.py --rounds 1 --concurrency 1 2 --sentences 1 --click --plot /tmp/p.png  # quick
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

import httpx  # noqa: E402
from bench_api import reference_clip  # noqa: E402
from streaming_stats import Arrival, Playback, percentile, playback  # noqa: E402

from tests.stack import serve_app, stack_settings, start_triton, write_demo_assets  # noqa: E402

# three sentences of 20, 17 and 22 words: the 15-25
SENTENCES = (
    "The first sentence of this answer sets the scene for the listener and keeps going for about twenty words.",
    "Then a second sentence carries the story on with a few more details that matter here.",
    "Finally the third sentence brings everything home, so the listener hears the whole answer without a single pause.",
)
MODES = ("sentence", "chunk")
PLOT = BENCH.parent / "docs" / "streaming_first_audio.png"
TARGETS = "chunk first audio p50 <= 0.5x sentence at c=1; p95 <= 0.7x at c=4; total <= 1.15x; no underrun at c=1"


class ChunkUnavailable(Exception):
    """The server does not stream by chunk (yet): its own words."""


@dataclass(frozen=True)
class Run:
    """One request as its client saw it (seconds from sending it)."""

    total: float
    sample_rate: int
    arrivals: tuple[Arrival, ...]

    @property
    def played(self) -> Playback:
        return playback(self.arrivals, self.sample_rate)

    @property
    def first_audio(self) -> float:
        return self.played.first_audio if self.played.first_audio is not None else self.total

    @property
    def rtf(self) -> float:
        return self.total / max(self.played.audio_seconds, 1e-9)


async def sse_run(
    client: httpx.AsyncClient, base_url: str, text: str, granularity: str, seed: int, reference: bytes
) -> Run:
    fields = {"text": text, "seed": str(seed), "format": "pcm"}
    if granularity != "sentence":  # the default: a server that predates the field is asked nothing new
        fields["granularity"] = granularity
    files = {"reference_audio": ("ref.wav", reference, "audio/wav")}
    started = time.perf_counter()
    arrivals: list[Arrival] = []
    rate = 0
    async with client.stream("POST", f"{base_url}/synthesize/sse", data=fields, files=files) as response:
        if response.status_code == 400 and granularity == "chunk":
            raise ChunkUnavailable((await response.aread()).decode(errors="replace"))
        response.raise_for_status()
        event, data = "message", []
        async for line in response.aiter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
            elif not line and data:
                payload = json.loads("\n".join(data))
                if event == "error":
                    raise RuntimeError(f"the stream failed: {json.dumps(payload.get('error'))}")
                if event == "start" and granularity == "chunk" and payload.get("granularity") != "chunk":
                    raise ChunkUnavailable("the server ignored granularity=chunk (its start event does not name it)")
                if event == "chunk":  # a sentence (sentence mode) or a piece of one (chunk mode)
                    rate = int(payload["sample_rate"])
                    samples = payload.get("samples", len(base64.b64decode(payload["audio"])) // 2)
                    arrivals.append(Arrival(time.perf_counter() - started, int(samples)))
                event, data = "message", []
    return Run(time.perf_counter() - started, rate, tuple(arrivals))


PARTS = ("triton", "rvc", "gateway")


def stack_cpu_seconds() -> dict[str, float]:
    """User + system CPU seconds so far of this process and its descendants (Linux /proc), by part:
    ``triton`` (tritonserver and its stubs), ``rvc`` (the RVC worker processes), ``gateway`` (this
    process: the app and the clients). CPU seconds are what a saturated box divides: a mode that needs
    more of them is slower in total at high concurrency whatever its latency, and they barely move
    with other load on the machine."""
    ticks = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        parents[int(entry.name)] = int(fields[1])
        times[int(entry.name)] = (int(fields[11]) + int(fields[12])) / ticks

    def tree(root: int) -> set[int]:
        found, frontier = {root}, [root]
        while frontier:
            parent = frontier.pop()
            children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in found]
            found.update(children)
            frontier.extend(children)
        return found

    used = dict.fromkeys(PARTS, 0.0)
    used["gateway"] = times.get(os.getpid(), 0.0)
    for child in (pid for pid, ppid in parents.items() if ppid == os.getpid()):
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        part = "triton" if b"tritonserver" in command else "rvc" if b"multiprocessing" in command else "gateway"
        used[part] += sum(times.get(pid, 0.0) for pid in tree(child))
    return used


async def batch(base_url: str, text: str, granularity: str, clients: int, seed: int, reference: bytes) -> list[Run]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(900, connect=30)) as client:
        return list(await asyncio.gather(*(
            sse_run(client, base_url, text, granularity, seed + index, reference) for index in range(clients)
        )))


def measure(
    text: str, concurrency: Sequence[int], rounds: int, workers: int, reference: bytes,
    cpu: dict[tuple[str, int], dict[str, float]],
) -> tuple[dict[tuple[str, int], list[Run]], str | None, bytes]:
    """Runs per (mode, concurrency); why chunk mode is missing (None when it works); one sentence's TTS WAV.
    ``cpu`` receives the CPU seconds of each part of the stack per (mode, concurrency), summed over rounds."""
    results: dict[tuple[str, int], list[Run]] = {}
    unavailable: str | None = None
    with tempfile.TemporaryDirectory(prefix="bench_streaming-") as folder:
        root = Path(folder)
        settings = stack_settings(root, write_demo_assets(root / "assets_root", ends_speech=False), rvc_workers=workers)
        triton = start_triton(settings)
        try:
            with serve_app(settings) as (_, base_url):
                modes = list(MODES)
                try:
                    asyncio.run(batch(base_url, text, "chunk", 1, 0, reference))  # warm-up, and the probe
                except ChunkUnavailable as error:
                    unavailable = str(error)
                    modes.remove("chunk")
                    print(f"chunk mode not available on this server: {unavailable}", flush=True)
                asyncio.run(batch(base_url, text, "sentence", 1, 0, reference))  # warm-up
                began = time.perf_counter()
                for clients in concurrency:
                    for round_index in range(rounds):
                        for mode in modes:
                            before = stack_cpu_seconds()
                            runs = asyncio.run(batch(base_url, text, mode, clients, 1000 * round_index, reference))
                            after, spent = stack_cpu_seconds(), cpu.setdefault((mode, clients), dict.fromkeys(PARTS, 0.0))
                            for part in PARTS:
                                spent[part] += after[part] - before[part]
                            results.setdefault((mode, clients), []).extend(runs)
                    print(f"  concurrency {clients} done after {time.perf_counter() - began:.0f} s", flush=True)
                tts = httpx.post(
                    f"{base_url}/tts", data={"text": SENTENCES[0], "seed": "1", "format": "wav"},
                    files={"reference_audio": ("ref.wav", reference, "audio/wav")}, timeout=600,
                )
                tts.raise_for_status()
        finally:
            triton.stop()
    return results, unavailable, tts.content


def _p(runs: list[Run], q: float, value: str) -> float:
    return percentile([getattr(run, value) for run in runs], q)


def report(
    results: dict[tuple[str, int], list[Run]], concurrency: Sequence[int], rounds: int, sentences: int,
    cpu: dict[tuple[str, int], dict[str, float]] | None = None,
) -> dict[str, bool]:
    """Prints the tables; returns each target's pass/fail (missing when it could not be judged)."""
    print(f"\n/synthesize/sse, {sentences} sentence(s) of 15-25 words, budget workload, {rounds} round(s) per "
          "concurrency")
    print(f"{'mode':<9} {'c':>2} {'n':>3} {'first p50':>9} {'first p95':>9} {'total p50':>9} {'RTF p50':>7} "
          f"{'gap p50':>7} {'gap max':>7} {'continuity OK':>13} {'CPU s/req: triton + rvc + gateway':>34}")
    cpu = cpu or {}
    for (mode, clients), runs in sorted(results.items(), key=lambda item: (item[0][1], item[0][0] != "sentence")):
        gaps = [run.played.longest_gap for run in runs]
        ok = sum(run.played.continuous for run in runs)
        spent = cpu.get((mode, clients), dict.fromkeys(PARTS, float("nan")))
        per_request = " + ".join(f"{spent[part] / len(runs):.2f}" for part in PARTS)
        print(f"{mode:<9} {clients:>2} {len(runs):>3} {_p(runs, 50, 'first_audio'):>9.3f} "
              f"{_p(runs, 95, 'first_audio'):>9.3f} {_p(runs, 50, 'total'):>9.3f} {_p(runs, 50, 'rtf'):>7.3f} "
              f"{statistics.median(gaps):>7.3f} {max(gaps):>7.3f} {f'{ok}/{len(runs)}':>13} {per_request:>34}")
    verdicts: dict[str, bool] = {}
    if not any(mode == "chunk" for mode, _ in results):
        print(f"\ntargets ({TARGETS}): not judged, chunk mode not available on this server")
        return verdicts
    print(f"\n{'c':>2} {'first p50 chunk/sentence':>25} {'first p95 chunk/sentence':>25} {'total p50 chunk/sentence':>25} "
          f"{'CPU chunk/sentence':>19}")
    ratios: dict[int, tuple[float, float, float]] = {}
    for clients in concurrency:
        if ("chunk", clients) not in results or ("sentence", clients) not in results:
            continue  # --rounds 0: the click check only
        chunk, sentence = results[("chunk", clients)], results[("sentence", clients)]
        ratios[clients] = tuple(  # type: ignore[assignment]  # three floats
            _p(chunk, q, value) / _p(sentence, q, value)
            for q, value in ((50, "first_audio"), (95, "first_audio"), (50, "total"))
        )
        work = sum(cpu.get(("chunk", clients), {"": float("nan")}).values()) / sum(
            cpu.get(("sentence", clients), {"": float("nan")}).values())
        print(f"{clients:>2} {ratios[clients][0]:>25.2f} {ratios[clients][1]:>25.2f} {ratios[clients][2]:>25.2f} "
              f"{work:>19.2f}")
    if 1 in ratios:
        verdicts["chunk first audio p50 <= 0.5x sentence, c=1"] = ratios[1][0] <= 0.5
        verdicts["total time <= 1.15x sentence, c=1"] = ratios[1][2] <= 1.15
        verdicts["zero underruns (gap > 100 ms), chunk, c=1"] = all(
            run.played.continuous for run in results[("chunk", 1)]
        )
    if 4 in ratios:
        verdicts["chunk first audio p95 <= 0.7x sentence, c=4"] = ratios[4][1] <= 0.7
    return verdicts


def plot(results: dict[tuple[str, int], list[Run]], concurrency: Sequence[int], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    for mode, color in zip(MODES, ("tab:blue", "tab:orange"), strict=True):
        levels = [clients for clients in concurrency if (mode, clients) in results]
        if not levels:
            continue
        for q, style in ((50, "-o"), (95, "--^")):
            values = [_p(results[(mode, clients)], q, "first_audio") for clients in levels]
            axes.plot(levels, values, style, color=color, label=f"{mode} p{q}")
    axes.set_xscale("log", base=2)
    axes.set_xticks(list(concurrency), [str(clients) for clients in concurrency])
    axes.set_xlabel("concurrent requests")
    axes.set_ylabel("time to first audio (s)")
    axes.set_title("/synthesize/sse first audio, budget workload (demo assets)")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    print(f"plot: {path}")


def click_check(tts_wav: bytes, seconds: float) -> bool:
    """Streamed vs offline RVC of the same TTS audio on one full-size random voice; True when no click."""
    import io

    import numpy as np
    import soundfile as sf
    import torch
    from bench_rvc import write_full_size_assets
    from bench_rvc_stream import snr_db, stream_once

    from rvc.infer.converter import ConversionParams, ConverterAssets, VoiceConverter
    from rvc.infer.stream import StreamConfig

    audio, rate = sf.read(io.BytesIO(tts_wav), dtype="float32")
    if rate != 16000:
        raise RuntimeError(f"/tts answered {rate} Hz; the stream converter takes 16 kHz")
    audio = audio[: int(seconds * rate)]
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="bench_streaming_click-") as folder:
        paths = write_full_size_assets(Path(folder))
        converter = VoiceConverter(ConverterAssets(paths["hubert"], paths["rmvpe"]))
        converter.load_voice("bench", paths["voice"], paths["index"])
        params = ConversionParams(deterministic=True)
        offline = converter.convert("bench", audio, rate, params).audio
        config = StreamConfig()
        streamed, ratio, steps, _ = stream_once(converter, audio, params, config)
    print(f"\nclick check: {audio.shape[0] / rate:.2f} s of the demo TTS, full-size v2 40k random voice, "
          f"stream block {config.block:g} s, steady block {config.steady_block:g} s, context {config.context:g} s")
    print(f"SNR stream vs offline {snr_db(offline, streamed):.2f} dB; length {streamed.shape[0]} vs {offline.shape[0]}"
          f" samples; largest jump at joins / inside blocks {ratio:.2f} (no click: <= 1.5); "
          f"RTF per step mean {float(np.mean(steps)):.3f}")
    return ratio <= 1.5


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--sentences", type=int, choices=(1, 2, 3), default=3, help="fewer for a quick check")
    parser.add_argument("--plot", type=Path, default=PLOT, help="PNG of first audio vs concurrency")
    parser.add_argument("--click", action="store_true", help="also streamed vs offline RVC on a full-size voice")
    parser.add_argument("--click-seconds", type=float, default=4.0)
    args = parser.parse_args()
    # a timeout's SIGTERM unwinds like Ctrl+C, so tritonserver and the workers are stopped, not orphaned
    signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(128 + number))
    os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] = "4096"  # as bench_api.py: inherited by workers and Triton
    text = " ".join(SENTENCES[: args.sentences])
    cpu: dict[tuple[str, int], dict[str, float]] = {}
    results, unavailable, tts_wav = measure(text, args.concurrency, args.rounds, args.workers, reference_clip(), cpu)
    verdicts = report(results, args.concurrency, args.rounds, args.sentences, cpu)
    if args.click:
        verdicts["no click: joins' largest jump <= 1.5x the blocks' own"] = click_check(tts_wav, args.click_seconds)
    plot(results, args.concurrency, args.plot)
    if unavailable:
        print("chunk mode not available on this server: sentence mode only")
    for target, passed in verdicts.items():
        print(f"{'PASS' if passed else 'FAIL'}  {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
