"""CPU benchmark of RVC conversion: seconds per stage and real-time factor, ours vs a reference-equivalent baseline.

Full-size random weights (HuBERT base, v2 40 kHz synthesizer, full RMVPE E2E(4, 1, (2, 2)), a
10k x 768 IVF256,Flat index) are written to a scratch folder in the official layouts and read
through the service's loaders. Every configuration runs twice in one process:

* ours: ``VoiceConverter.convert`` (weight norm folded at load, ``torch.inference_mode``,
  index vectors reconstructed once, models loaded once, ``--threads`` intra-op threads, the
  decoder run in fixed-size windows of channels-last planar convolutions);
* baseline: the same pipeline steps as the reference runs them (weight norm recomputed on every
  forward through ``torch.nn.utils.parametrizations.weight_norm``, ``torch.no_grad``, the index
  re-read from disk and ``reconstruct_n`` on every call, torch's default thread count, the decoder
  in one pass of 1-D convolutions).

Both run in deterministic mode (no noise draws), so their outputs must agree; the largest
difference is printed (expected <= 1e-4, i.e. within a few int16 LSB) beside the RMS error in dB
under the baseline's signal (``error_stats``). With ``--bf16`` two more rows run ours with
``precision="bf16"`` (the opt-in reduced-precision decoder) on the same input, in its two layouts:
"ours bf16" as served (the last stage's stream, source conv and ``conv_post`` kept in float32,
``NsfGenerator.float32_tail``) and "ours bf16 all" (every decoder conv in bf16, the layout before
it); each with its max and RMS deviation from the float32 baseline and its speed against ours in
float32 ("vs fp32"). Without native bf16 (AVX-512 BF16 / AMX) torch emulates it: slower, same error.
"CPU s" is the process
CPU time of the conversion (all threads): on a shared, oversubscribed box it is a steadier
measure of work than wall time. FCPE runs on its real weights (the installed torchfcpe wheel's
file); a closing table gives each method's f0 seconds per second of audio and its ratio to rmvpe's.

    python bench/bench_rvc.py --seconds 5 20 --methods rmvpe fcpe pm harvest crepe-tiny crepe-full --threads 2
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import rvc  # noqa: E402,F401  (installs the triton-folder guard before torch loads)

# isort: split
import torch  # noqa: E402
from error_stats import error_stats  # noqa: E402  (this folder: the script's own)

from rvc.infer.converter import ConversionParams, ConverterAssets, VoiceConverter  # noqa: E402
from rvc.infer.index import FeatureIndex, Trace  # noqa: E402
from rvc.infer.pipeline import SegmentModels, run_pipeline  # noqa: E402
from rvc.infer.signal_ops import limit_peak, to_int16  # noqa: E402
from rvc.infer.synthesizer import Synthesizer  # noqa: E402
from rvc.infer.weight_norm import normalize_weight_norm_names, weight_norm_prefixes  # noqa: E402

SAMPLE_RATE = 16000
STAGES = ("preprocess", "f0", "hubert", "index", "synthesizer", "postprocess")
# --bf16 rows: path -> (voice name, the decoder's float32_tail)
REDUCED_LAYOUTS = {"ours bf16": ("bench", True), "ours bf16 all": ("bench-all", False)}


def synthetic_voice(seconds: float, seed: int = 0) -> np.ndarray:
    """A harmonic 'voice' at 16 kHz: f0 100-220 Hz with vibrato, voiced/unvoiced gating, light noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    f0 = 160 + 60 * np.sin(2 * np.pi * 0.3 * t) + 5 * np.sin(2 * np.pi * 5.5 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    voiced = sum((0.25 / k) * np.sin(k * phase) for k in range(1, 12))
    gate = (np.sin(2 * np.pi * 0.7 * t) > -0.6).astype(np.float64)
    gate = np.convolve(gate, np.ones(400) / 400, mode="same")
    noise = rng.standard_normal(t.size)
    return (gate * voiced + (1 - gate) * 0.05 * noise + 0.003 * noise).astype(np.float32)


def write_full_size_assets(folder: Path) -> dict[str, Path]:
    """Random full-size models in the official layouts (about 850 MB)."""
    import faiss
    from safetensors.torch import save_file
    from transformers import HubertConfig

    from rvc.infer.hubert import HubertWithFinalProj
    from rvc.infer.rmvpe_net import E2E, RMVPEConfig
    from rvc.infer.synthesizer import save_voice_checkpoint
    from rvc.infer.synthesizer_config import official_config

    torch.manual_seed(0)
    paths = {"voice": folder / "bench_v2_40k.pth", "index": folder / "added_IVF256_Flat_bench_v2.index",
             "hubert": folder / "hubert_base", "rmvpe": folder / "rmvpe.pt"}  # fmt: skip
    save_voice_checkpoint(Synthesizer(official_config("v2", 40000)), paths["voice"], info="bench")
    config = HubertConfig(classifier_proj_size=256, layerdrop=0.0)
    hubert = HubertWithFinalProj(config)
    paths["hubert"].mkdir(exist_ok=True)
    config.to_json_file(paths["hubert"] / "config.json")
    save_file(
        {k: v.contiguous() for k, v in hubert.state_dict().items()}, paths["hubert"] / "model.safetensors"
    )
    torch.save(E2E(RMVPEConfig()).state_dict(), paths["rmvpe"])
    vectors = np.random.default_rng(0).standard_normal((10000, 768)).astype(np.float32)
    index = faiss.index_factory(768, "IVF256,Flat")
    faiss.extract_index_ivf(index).nprobe = 1
    index.train(vectors)
    index.add(vectors)
    faiss.write_index(index, str(paths["index"]))
    return paths


# -- baseline: the reference's way of running the same math ---------------------------------------


class PerCallIndex:
    """The reference re-reads the index and reconstructs every vector on each conversion."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def blend(self, feats: torch.Tensor, index_rate: float, *, trace: Trace | None = None) -> torch.Tensor:
        return FeatureIndex.load(self.path).blend(feats, index_rate, trace=trace)


class UnfoldedSynthesizer(Synthesizer):
    """Weight norm as a parametrization (g * v / ||v|| recomputed on every forward), no inference_mode."""

    def infer(self, *inputs: Any, **options: Any) -> torch.Tensor:
        synthesize = inspect.unwrap(Synthesizer.synthesize)  # without its inference_mode decorator
        return synthesize(self, *inputs, **options).audio


def load_unfolded_synthesizer(path: Path) -> UnfoldedSynthesizer:
    from torch.nn.utils.parametrizations import weight_norm

    from rvc.infer.synthesizer import load_voice_checkpoint

    config = load_voice_checkpoint(path).config
    model = UnfoldedSynthesizer(config)
    prefixes = weight_norm_prefixes(model)
    for prefix in prefixes:
        weight_norm(model.get_submodule(prefix), name="weight", dim=0)
    weights = normalize_weight_norm_names(torch.load(path, weights_only=True)["weight"])
    state = {}
    for key, value in weights.items():
        if key.startswith("enc_q."):
            continue
        key = key.replace(".weight_g", ".parametrizations.weight.original0")
        key = key.replace(".weight_v", ".parametrizations.weight.original1")
        state[key] = value.float()
    model.load_state_dict(state, strict=True)
    model.dec.window_frames = 0  # one whole pass ...
    model.dec.planar = False  # ... of (B, C, T) 1-D convolutions, as the reference decodes
    return model.eval()


@dataclass
class Baseline:
    converter: VoiceConverter  # shares HuBERT and RMVPE (both loaded once, as the reference caches them)
    synthesizer: UnfoldedSynthesizer
    index_path: Path

    def convert(self, audio16k: np.ndarray, params: ConversionParams) -> tuple[np.ndarray, dict[str, float]]:
        models = SegmentModels(hubert=self.converter.hubert, synthesizer=self.synthesizer, version="v2",
                               # duck-typed: the pipeline only calls the index's blend
                               index=cast(FeatureIndex, PerCallIndex(self.index_path)),
                               device=torch.device("cpu"))  # fmt: skip
        timings: dict[str, float] = {}
        start = time.perf_counter()
        with torch.no_grad():
            out, _ = run_pipeline(limit_peak(audio16k), models, params, if_f0=True, sample_rate=40000,
                                  rmvpe=self.converter.rmvpe, crepe_model=self.converter.crepe_model,
                                  fcpe=self.converter.fcpe() if params.f0_method == "fcpe" else None,
                                  timings=timings)  # fmt: skip
        audio = to_int16(out).astype(np.float32) / 32768.0
        timings["total"] = time.perf_counter() - start
        return audio, timings


# -- running ------------------------------------------------------------------------------------------


def method_and_model(name: str) -> tuple[str, str]:
    if name.startswith("crepe"):
        return "crepe", name.partition("-")[2] or "full"
    return name, "full"


def run(args: argparse.Namespace) -> list[dict]:
    default_threads = torch.get_num_threads()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_rvc_") as scratch:
        started = time.perf_counter()
        paths = write_full_size_assets(Path(scratch))
        print(f"wrote full-size assets in {time.perf_counter() - started:.1f} s", flush=True)
        started = time.perf_counter()
        converter = VoiceConverter(ConverterAssets(paths["hubert"], paths["rmvpe"]))
        converter.load_voice("bench", paths["voice"], paths["index"])
        print(
            f"ours: HuBERT + RMVPE + voice + index loaded in {time.perf_counter() - started:.1f} s",
            flush=True,
        )
        baseline = Baseline(converter, load_unfolded_synthesizer(paths["voice"]), paths["index"])
        reduced = None
        if args.bf16:
            reduced = VoiceConverter(ConverterAssets(paths["hubert"], paths["rmvpe"]), precision="bf16")
            for voice, float32_tail in REDUCED_LAYOUTS.values():
                reduced.load_voice(voice, paths["voice"], paths["index"])
                reduced.resident(voice).checkpoint.model.dec.float32_tail = float32_tail
        for name in args.methods:
            method, converter.crepe_model = method_and_model(name)
            params = ConversionParams(f0_method=method, deterministic=True)
            warm = synthetic_voice(1.0, seed=1)
            torch.set_num_threads(args.threads)
            converter.convert("bench", warm, SAMPLE_RATE, params)  # first-call costs (crepe load, allocators)
            if reduced is not None:
                reduced.crepe_model = converter.crepe_model
                for voice, _ in REDUCED_LAYOUTS.values():
                    reduced.convert(voice, warm, SAMPLE_RATE, params)
            for seconds in args.seconds:
                audio = synthetic_voice(seconds)
                torch.set_num_threads(default_threads)
                cpu = time.process_time()
                ref_audio, ref_t = baseline.convert(audio, params)
                ref_t["cpu"] = time.process_time() - cpu
                torch.set_num_threads(args.threads)
                cpu = time.process_time()
                result = converter.convert("bench", audio, SAMPLE_RATE, params)
                result.timings["cpu"] = time.process_time() - cpu
                error = error_stats(ref_audio, result.audio)
                rows.append({"seconds": seconds, "method": name, "ours": result.timings, "baseline": ref_t,
                             "errors": {"ours": [error.max_abs, error.rms_db]},
                             "samples": int(result.audio.size)})  # fmt: skip
                for path, (voice, _) in REDUCED_LAYOUTS.items():
                    if reduced is None:
                        break
                    cpu = time.process_time()
                    bf16 = reduced.convert(voice, audio, SAMPLE_RATE, params)
                    bf16.timings["cpu"] = time.process_time() - cpu
                    rows[-1][path] = bf16.timings
                    error = error_stats(ref_audio, bf16.audio)
                    rows[-1]["errors"][path] = [error.max_abs, error.rms_db]
                print_row(rows[-1], header=len(rows) == 1)
    print_f0_costs(rows)
    return rows


def print_f0_costs(rows: list[dict]) -> None:
    """f0 seconds per second of audio (ours), over all input lengths, and the ratio to rmvpe in this run."""
    per_method: dict[str, float] = {}
    for name in dict.fromkeys(row["method"] for row in rows):
        mine = [row for row in rows if row["method"] == name]
        per_method[name] = sum(row["ours"].get("f0", 0.0) for row in mine) / sum(row["seconds"] for row in mine)
    print("\n| f0 method | f0 s per s of audio | vs rmvpe |\n|---|---|---|")
    for name, cost in per_method.items():
        ratio = f"{cost / per_method['rmvpe']:.3g}x" if per_method.get("rmvpe") else ""
        print(f"| {name} | {cost:.4f} | {ratio} |", flush=True)


def print_row(row: dict, *, header: bool) -> None:
    if header:
        columns = [
            "input",
            "f0 method",
            "path",
            "total s",
            "RTF",
            "CPU s",
            *[f"{s} s" for s in STAGES],
            "speed-up",
            "vs fp32",
            "max|diff|",
            "RMS err dB",
        ]
        print("| " + " | ".join(columns) + " |")
        print("|" + "---|" * len(columns))
    for path in ("baseline", "ours", *REDUCED_LAYOUTS):
        if path not in row:
            continue
        t = row[path]
        cells = [
            f"{row['seconds']:g} s",
            row["method"],
            path,
            f"{t['total']:.2f}",
            f"{t['total'] / row['seconds']:.3f}",
            f"{t['cpu']:.1f}",
        ]
        cells += [f"{t.get(stage, 0.0):.3f}" for stage in STAGES]
        speedup = row["baseline"]["total"] / t["total"]
        versus_fp32 = row["ours"]["total"] / t["total"] if path in REDUCED_LAYOUTS else None
        cells += [f"{speedup:.2f}x", "" if versus_fp32 is None else f"{versus_fp32:.2f}x"]
        max_abs, rms_db = row["errors"].get(path, (None, None))
        cells += ["", ""] if max_abs is None else [f"{max_abs:.1e}", f"{rms_db:.1f}"]
        print("| " + " | ".join(cells) + " |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, nargs="+", default=[5.0, 20.0])
    parser.add_argument(
        "--methods", nargs="+", default=["rmvpe", "fcpe", "pm", "harvest", "crepe-tiny", "crepe-full"]
    )
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--bf16", action="store_true", help="also time the opt-in bf16 decoder")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {args.threads} threads (torch default {torch.get_num_threads()})")
    rows = run(args)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
