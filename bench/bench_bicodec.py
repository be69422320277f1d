"""BiCodec on the CPU in bfloat16: the audio tokenizer and the vocoder against float32, same process.

Both precisions load from the same weights: ``demo`` is the tiny random Spark-TTS folder
(``sparktts.demo.write_demo_model``) read by ``BiCodecTokenizer.from_pretrained(dtype=...)``, the
opt-in the loader already has; ``full`` is bench_tts.py's full-size BiCodec and xlsr-53-sized
wav2vec2 built in memory, with a copy cast the way the loader casts (``BiCodec.cast``: all but the
mel front end; the whole wav2vec2 mix). Measured, each time the minimum of ``--repeats`` runs after one untimed call:

* tokenizer (wav2vec2 feature extractor + encoder + quantizer, speaker encoder) on a
  ``--ref-seconds`` reference: time, the share of semantic and global tokens equal to float32's,
  and what a flipped token costs on the wav (both token sets vocoded by the float32 vocoder);
* vocoder (``detokenize``) of ``--out-seconds`` of random tokens: time and the wav's deviation.

Errors are ``error_stats``'s max |diff| and RMS error in dB under the float32 wav. The rule the
issue sets for keeping a path: faster than float32 and within 1e-3 (max) of it on the wav.
With ``onnxruntime`` and ``onnx`` installed, an ``ort`` row per part runs the float32 model exported
by torch's TorchScript-based ONNX exporter (wav2vec2 + encoder + quantizer, and the speaker encoder,
for the tokenizer; prenet + wave generator for the vocoder) on ONNX Runtime's CPU provider with
the same thread count; OpenVINO likewise when it is installed (it is not timed yet).

    python bench/bench_bicodec.py --sizes demo full --threads 2
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo root

import sparktts  # noqa: E402,F401  (installs the triton-folder guard before torch loads)

# isort: split
import torch  # noqa: E402
from bench_tts import best_time, build_codec  # noqa: E402  (this folder: full-size models as bench_tts times them)
from error_stats import ErrorStats, error_stats  # noqa: E402  (this folder: the script's own)

from sparktts.audio_tokenizer import BiCodecTokenizer  # noqa: E402

TOKEN_RATE = 50
MAX_ABS_BUDGET = 1e-3  # the bar on the wav for keeping a faster path


@dataclass(frozen=True)
class PartResult:
    """One part (tokenizer or vocoder) in one precision against float32."""

    part: str
    size: str
    path: str
    seconds: float
    fp32_seconds: float
    wav_error: ErrorStats | None  # None for the float32 row itself
    token_agreement: str = ""  # tokenizer only: "semantic 98.9%, global 100%"

    def cells(self) -> list[str]:
        error = ("", "") if self.wav_error is None else self.wav_error.cells()
        ratio = self.fp32_seconds / self.seconds
        return [self.part, self.size, self.path, f"{self.seconds:.3f}", f"{ratio:.2f}x", *error,
                self.token_agreement, self.verdict()]  # fmt: skip

    def verdict(self) -> str:
        if self.wav_error is None:
            return "reference"
        faster = self.seconds < self.fp32_seconds
        close = self.wav_error.max_abs <= MAX_ABS_BUDGET
        reasons = [reason for reason, bad in (("slower", not faster), ("over 1e-3", not close)) if bad]
        return f"no ({', '.join(reasons)})" if reasons else "keep"


def demo_codecs(folder: Path) -> tuple[BiCodecTokenizer, BiCodecTokenizer]:
    from sparktts.demo import write_demo_model

    root = write_demo_model(folder)
    return (BiCodecTokenizer.from_pretrained(root, dtype=torch.float32),
            BiCodecTokenizer.from_pretrained(root, dtype=torch.bfloat16))  # fmt: skip


def full_codecs() -> tuple[BiCodecTokenizer, BiCodecTokenizer]:
    fp32, _ = build_codec(seed=0)
    if fp32.wav2vec2 is None:
        raise SystemExit("the full-size codec was built without wav2vec2")
    model = copy.deepcopy(fp32.model).cast(torch.bfloat16)
    if model.decoder is not None:
        model.decoder.prepare_for_inference()  # its cached 1/alpha follows the new dtype
    wav2vec2 = copy.deepcopy(fp32.wav2vec2).to(dtype=torch.bfloat16)
    return fp32, BiCodecTokenizer(fp32.config, model, wav2vec2)


def agreement(reference: torch.Tensor, other: torch.Tensor) -> float:
    return float((reference == other).float().mean()) * 100


class Codec(Protocol):
    def tokenize(self, wav: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]: ...

    def detokenize(self, global_tokens: torch.Tensor, semantic: torch.Tensor) -> np.ndarray: ...


def timed(fn: Callable[[], object], repeats: int) -> float:
    """Best of ``repeats`` after one untimed call (first-call costs: allocators, oneDNN primitives, ORT arenas)."""
    fn()
    return best_time(fn, repeats)


def measure(
    size: str, fp32: BiCodecTokenizer, others: dict[str, Codec], args: argparse.Namespace
) -> list[PartResult]:
    """Each of ``others`` against ``fp32`` on the same reference and the same tokens."""
    rng = np.random.default_rng(0)
    reference = (0.1 * rng.standard_normal(int(16000 * args.ref_seconds))).astype(np.float32)
    semantic = torch.from_numpy(rng.integers(0, 8192, (1, int(TOKEN_RATE * args.out_seconds))))
    global_tokens = torch.from_numpy(rng.integers(0, 4096, (1, 32)))
    tokenizer, vocoder = f"tokenizer {args.ref_seconds:g} s", f"vocoder {args.out_seconds:g} s"

    tokenize32 = timed(lambda: fp32.tokenize(reference), args.repeats)
    vocode32 = timed(lambda: fp32.detokenize(global_tokens, semantic), args.repeats)
    glob32, sem32 = fp32.tokenize(reference)
    wav_from_tokens32 = fp32.detokenize(glob32, sem32)
    wav32 = fp32.detokenize(global_tokens, semantic)
    tokenizer_rows = [PartResult(tokenizer, size, "fp32", tokenize32, tokenize32, None)]
    vocoder_rows = [PartResult(vocoder, size, "fp32", vocode32, vocode32, None)]
    for path, codec in others.items():
        seconds = timed(lambda codec=codec: codec.tokenize(reference), args.repeats)  # type: ignore[misc]  # default arg binds this loop's codec
        glob, sem = codec.tokenize(reference)
        agree = f"semantic {agreement(sem32, sem):.1f}%, global {agreement(glob32, glob):.1f}%"
        # a flipped token's cost, heard through the float32 vocoder
        error = error_stats(wav_from_tokens32, fp32.detokenize(glob, sem))
        tokenizer_rows.append(PartResult(tokenizer, size, path, seconds, tokenize32, error, agree))
        seconds = timed(lambda codec=codec: codec.detokenize(global_tokens, semantic), args.repeats)  # type: ignore[misc]  # likewise
        error = error_stats(wav32, codec.detokenize(global_tokens, semantic))
        vocoder_rows.append(PartResult(vocoder, size, path, seconds, vocode32, error))
    return tokenizer_rows + vocoder_rows


class SemanticTokens(torch.nn.Module):
    """Normalised wav (1, T) -> semantic tokens (1, frames): wav2vec2 mix, encoder, quantizer."""

    def __init__(self, codec: BiCodecTokenizer) -> None:
        super().__init__()
        self.wav2vec2, self.bicodec = codec.wav2vec2, codec.model

    def forward(self, input_values: torch.Tensor) -> torch.Tensor:
        assert self.wav2vec2 is not None
        return self.bicodec.quantizer.tokenize(self.bicodec.encode(self.wav2vec2(input_values)))


class GlobalTokens(torch.nn.Module):
    """Mel (1, n_mels, frames) -> global tokens (1, 1, 32): the speaker encoder."""

    def __init__(self, codec: BiCodecTokenizer) -> None:
        super().__init__()
        self.bicodec = codec.model

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.bicodec.speaker_encoder.tokenize(mel.transpose(1, 2))


class Vocoder(torch.nn.Module):
    """(semantic (1, T) int64, global (1, 1, 32) int64) -> wav (1, 1, 320 T)."""

    def __init__(self, codec: BiCodecTokenizer) -> None:
        super().__init__()
        self.bicodec = codec.model

    def forward(self, semantic: torch.Tensor, global_tokens: torch.Tensor) -> torch.Tensor:
        return self.bicodec.detokenize(semantic, global_tokens)


class OrtCodec:
    """The float32 codec's tokenize / detokenize, each network run by ONNX Runtime (exported once)."""

    def __init__(self, codec: BiCodecTokenizer, folder: Path, threads: int) -> None:
        import onnxruntime

        self.codec = codec
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        rng = np.random.default_rng(1)
        wav = (0.1 * rng.standard_normal(16000 * 3)).astype(np.float32)
        assert codec.wav2vec2 is not None
        examples = {
            "semantic": (SemanticTokens(codec), (codec.wav2vec2.prepare(wav),), ["input_values"], {"input_values": {1: "T"}}),
            "global": (GlobalTokens(codec), (self.mel(wav),), ["mel"], {"mel": {2: "frames"}}),
            "vocoder": (Vocoder(codec), (torch.zeros(1, 50, dtype=torch.long), torch.zeros(1, 1, 32, dtype=torch.long)),
                        ["semantic", "global_tokens"], {"semantic": {1: "T"}}),
        }  # fmt: skip
        self.sessions = {}
        for name, (module, inputs, names, axes) in examples.items():
            path = folder / f"{name}.onnx"
            # The exporter restores the wrapper's mode afterwards, recursively: a wrapper left in
            # training mode would switch the float32 codec's dropout on for every later call.
            module.eval()
            with torch.inference_mode():
                torch.onnx.export(module, inputs, str(path), dynamo=False, input_names=names, output_names=["out"],
                                  dynamic_axes=axes, opset_version=17)  # fmt: skip
            self.sessions[name] = onnxruntime.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )

    def mel(self, wav: np.ndarray) -> torch.Tensor:
        from sparktts.reference import reference_clip

        clip = reference_clip(wav, self.codec.config.ref_segment_length).astype(np.float32)
        with torch.inference_mode():
            return self.codec.model.mel(torch.from_numpy(clip)[None])

    def tokenize(self, wav: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        assert self.codec.wav2vec2 is not None
        semantic = self.sessions["semantic"].run(
            None, {"input_values": self.codec.wav2vec2.prepare(wav).numpy()}
        )[0]
        glob = self.sessions["global"].run(None, {"mel": self.mel(wav).numpy()})[0]
        return torch.from_numpy(glob[:, 0]).long(), torch.from_numpy(semantic).long()

    def detokenize(self, global_tokens: torch.Tensor, semantic: torch.Tensor) -> np.ndarray:
        feeds = {
            "semantic": semantic.long().numpy(),
            "global_tokens": global_tokens.long().reshape(1, 1, -1).numpy(),
        }
        return self.sessions["vocoder"].run(None, feeds)[0][:, 0]


def exported_runtimes() -> list[str]:
    """The installed exported runtimes this bench can time."""
    return [name for name in ("onnxruntime", "onnx") if importlib.util.find_spec(name) is not None]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", nargs="+", choices=("demo", "full"), default=["demo", "full"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ref-seconds", type=float, default=6.0)
    parser.add_argument("--out-seconds", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}", flush=True)  # fmt: skip
    runtimes = exported_runtimes()
    print(
        f"exported runtimes installed: {', '.join(runtimes) or 'none (ONNX Runtime, OpenVINO)'}", flush=True
    )
    columns = ["part", "size", "path", "s", "vs fp32", "max|diff| wav", "RMS err dB", "tokens equal", "keep?"]
    print("| " + " | ".join(columns) + " |\n|" + "---|" * len(columns), flush=True)
    for size in args.sizes:
        with tempfile.TemporaryDirectory(prefix="bench_bicodec_") as scratch:
            fp32, bf16 = demo_codecs(Path(scratch)) if size == "demo" else full_codecs()
            others: dict[str, Codec] = {"bf16": bf16}
            if "onnxruntime" in runtimes and "onnx" in runtimes:
                started = time.perf_counter()
                others["ort"] = OrtCodec(fp32, Path(scratch), args.threads)
                print(f"({size}: exported to ONNX in {time.perf_counter() - started:.1f} s)", flush=True)
            for row in measure(size, fp32, others, args):
                print("| " + " | ".join(row.cells()) + " |", flush=True)


if __name__ == "__main__":
    main()
