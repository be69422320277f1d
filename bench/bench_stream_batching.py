"""Concurrent LLM streams: one decode thread stepping every row (``StreamBatcher``) against one
decode per request thread (``SparkLM.stream``, what ``stream_batching=false`` serves), one process.

Builds the demo Spark LLM (``sparktts.demo_llm``, random weights that talk the Spark grammar,
``ends_speech=False`` so every stream runs to ``--tokens``; ``--hidden-size`` / ``--layers`` make it
bigger) and, at each concurrency N, starts N streams of different clone prompts and seeds (stream i
after ``i * --stagger-ms``), reads each to its end in its own thread, and records per stream its
time from start to last id. Per N and mode it prints the wall time of the N streams, the
aggregate tokens/s, the mean and worst per-stream time, then per-thread / batcher ratios (> 1: the
batcher is faster), and checks that every seeded stream got the same ids from both modes.

    python bench/bench_stream_batching.py [--tokens 200] [--concurrency 1 2 4] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo root

import sparktts  # noqa: E402,F401  (installs the triton-folder guard before torch loads)

# isort: split
import torch  # noqa: E402

from sparktts import prompts  # noqa: E402
from sparktts.demo_llm import write_demo_llm  # noqa: E402
from sparktts.llm import GenerationParams, SparkLM  # noqa: E402
from sparktts.serving.stream_batcher import StreamBatcher  # noqa: E402

Stream = Callable[[str, GenerationParams], Iterator[int]]
TEXTS = ("The first caller asks about the weather tomorrow.", "A second one wants a short story read aloud.",
         "Someone else checks the opening hours.", "And the last caller orders a pizza with extra cheese.")


@dataclass(frozen=True)
class Run:
    """One mode at one concurrency: the N streams' ids and times."""

    ids: list[list[int]]
    stream_s: list[float]  # per stream, its start to its last id
    wall_s: float  # first start to last end

    def tokens_per_s(self) -> float:
        return sum(len(ids) for ids in self.ids) / self.wall_s


def run_streams(stream: Stream, requests: Sequence[tuple[str, GenerationParams]], stagger_s: float) -> Run:
    ids: list[list[int]] = [[] for _ in requests]
    times = [0.0] * len(requests)
    start = time.perf_counter()

    def consume(index: int) -> None:
        time.sleep(index * stagger_s)
        began = time.perf_counter()
        ids[index] = list(stream(*requests[index]))
        times[index] = time.perf_counter() - began

    threads = [threading.Thread(target=consume, args=(i,)) for i in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return Run(ids, times, time.perf_counter() - start)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=200, help="ids per stream (every stream runs to it)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--hidden-size", type=int, default=32)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--stagger-ms", type=float, default=0.0, help="stream i starts i * this after the first")
    parser.add_argument("--repeats", type=int, default=1, help="runs per mode and concurrency; the fastest is kept")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        llm_dir = write_demo_llm(Path(tmp) / "LLM", hidden_size=args.hidden_size, num_layers=args.layers,
                                 ends_speech=False)
        lm = SparkLM.from_pretrained(llm_dir)
    rng = np.random.default_rng(0)
    requests = [(prompts.build_clone_prompt(TEXTS[i % len(TEXTS)], rng.integers(0, 4096, 32)),
                 GenerationParams(seed=100 + i, max_new_tokens=args.tokens)) for i in range(max(args.concurrency))]
    batcher = StreamBatcher(lm)
    modes: dict[str, Stream] = {"per-thread": lm.stream, "batcher": batcher.stream}
    print(f"demo LLM hidden {args.hidden_size}, {args.layers} layers, {args.tokens} ids per stream, "
          f"torch threads {args.threads}, stagger {args.stagger_ms} ms")
    print(f"{'N':>2} {'mode':>10} {'wall s':>8} {'tok/s':>8} {'stream mean s':>14} {'stream max s':>13}")
    try:
        for count in args.concurrency:
            runs: dict[str, Run] = {}
            for name, stream in modes.items():
                tries = [run_streams(stream, requests[:count], args.stagger_ms / 1000) for _ in range(args.repeats)]
                runs[name] = min(tries, key=lambda run: run.wall_s)
                run = runs[name]
                print(f"{count:>2} {name:>10} {run.wall_s:>8.3f} {run.tokens_per_s():>8.0f} "
                      f"{statistics.mean(run.stream_s):>14.3f} {max(run.stream_s):>13.3f}")
            same = runs["per-thread"].ids == runs["batcher"].ids
            print(f"{count:>2} per-thread / batcher: wall {runs['per-thread'].wall_s / runs['batcher'].wall_s:.2f}x, "
                  f"mean stream {statistics.mean(runs['per-thread'].stream_s) / statistics.mean(runs['batcher'].stream_s):.2f}x; "
                  f"same ids: {same}")
    finally:
        batcher.close()


if __name__ == "__main__":
    main()
