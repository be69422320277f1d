"""What decoding each vocoder request alone costs against stacking equal lengths, in the same run.

``sparktts.serving.vocode_batch`` decodes every request of a dynamic batch alone (a stacked batch
took other convolution kernels and moved a seeded request's samples by an int16 step). This
measures the throughput given up: for batch sizes 2..N of equal-length token sequences it times
the stacked decode (what the vocoder did before) and the one-by-one decode (what it does now),
alternating rounds so both see the same machine state, and prints the ratio one-by-one / stacked.
Demo-size BiCodec unless ``--model-dir`` names a real Spark-TTS-0.5B folder.

    python bench/bench_vocoder_batching.py [--model-dir DIR] [--tokens 250] [--rounds 5] [--batch 4]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from sparktts.audio_tokenizer import BiCodecTokenizer
from sparktts.demo import write_demo_model
from sparktts.serving.codec import vocode_batch


def stacked(tokenizer: BiCodecTokenizer, items: list[tuple[np.ndarray, np.ndarray]]) -> None:
    """The old behaviour: one decode of the whole equal-length batch."""
    tokenizer.detokenize(torch.from_numpy(np.stack([g for g, _ in items])), torch.from_numpy(np.stack([s for _, s in items])))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument("--tokens", type=int, default=250, help="semantic tokens per request (50 per second)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=4, help="largest batch size measured")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (Triton's models run with 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as scratch:
        model_dir = args.model_dir
        if model_dir is None:
            model_dir = Path(scratch) / "Spark-TTS-0.5B"
            write_demo_model(model_dir, seed=0)
        tokenizer = BiCodecTokenizer.from_pretrained(
            str(model_dir), device="cpu", dtype=torch.float32, with_encoder=False, with_decoder=True
        )
        config = tokenizer.model.config
        rng = np.random.default_rng(0)
        print(f"vocoder, {args.tokens} tokens per request, {args.threads} thread(s), {args.rounds} rounds")
        print(f"{'batch':>5} {'stacked s':>10} {'alone s':>10} {'alone/stacked':>14}")
        for size in range(2, args.batch + 1):
            items = [
                (rng.integers(0, config.speaker_encoder.codebook_size, 32).astype(np.int64),
                 rng.integers(0, config.quantizer.codebook_size, args.tokens).astype(np.int64))
                for _ in range(size)
            ]
            stacked(tokenizer, items)  # kernels built once for each shape before timing
            vocode_batch(tokenizer, items)
            times: dict[str, list[float]] = {"stacked": [], "alone": []}
            for _ in range(args.rounds):
                started = time.perf_counter()
                stacked(tokenizer, items)
                times["stacked"].append(time.perf_counter() - started)
                started = time.perf_counter()
                vocode_batch(tokenizer, items)
                times["alone"].append(time.perf_counter() - started)
            old, new = statistics.median(times["stacked"]), statistics.median(times["alone"])
            print(f"{size:>5} {old:>10.3f} {new:>10.3f} {new / old:>14.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
