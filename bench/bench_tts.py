"""Spark-TTS speed: the official-equivalent float32 path against ours, same process, same weights.

Everything is built in memory from the official configs with random weights (nothing is
downloaded; speed does not depend on weight values): the 0.5B Qwen2 LLM (vocab 166,000),
xlsr-53-sized wav2vec2 (24 layers) and the full BiCodec. Measured, each as the minimum of
``--repeats`` runs (the box is shared; the minimum is the least noisy estimate):

* tokenize a ``--ref-seconds`` reference: official = transformers' wav2vec2 with all 24 layers and
  every hidden state (what upstream runs) + BiCodec; ours = ``BiCodecTokenizer.tokenize`` (our torch
  wav2vec2, 16 layers, the same weights);
* LLM decode tokens/s at batch 1 and 4 on a ``--prompt-tokens`` prompt: official = HF
  ``generate(do_sample, top_k=50, top_p=0.95, temperature=0.8)`` in float32; ours = ``SparkLM``
  exact (seeded: bit-identical ids and random draws to the official run; unseeded: same
  distribution, cheaper draw), ``fast_matmul``, ``fast_matmul + restrict_vocab`` (and bfloat16
  with ``--bf16``). A step's time is ``(t(1 + steps) - t(1)) / steps``, so prefill is excluded;
* with ``--onnx-cache DIR``: the ``onnxruntime`` LLM backend (``sparktts.llm_onnx``: the int8 export
  run by ONNX Runtime on ``--threads`` threads, our sampling on one torch thread as in the stub),
  exported once into DIR from the same random weights (cached by their hash, so a second run skips the
  export), timed the same way but with the rows' prefills outside the step time; its ratio to the
  torch default path (``fast_matmul``) of the same process is printed (``bench_onnx_decode.py`` has
  the backend's own figures at 1-8 rows);
* detokenize ``--out-seconds`` of audio (BiCodec; the same code on both sides);
* end-to-end real-time factor for ``--out-seconds`` of speech from a ``--ref-seconds`` clone
  prompt, composed from the measured parts: tokenize + prefill + 50/s * out_seconds steps + detokenize.

Usage: ``python bench/bench_tts.py [--threads 2] [--decode-steps 24] [--repeats 2] [--bf16]
[--onnx-cache DIR] [--torch-rows default]`` (``default``: only the torch default path,
skipping the official baseline and the other torch rows).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo root

import sparktts  # noqa: E402,F401  (installs the triton-folder guard before torch loads)

# isort: split
import torch  # noqa: E402
from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM, Wav2Vec2Config, Wav2Vec2Model  # noqa: E402

from sparktts.audio_tokenizer import BiCodecTokenizer
from sparktts.bicodec import BiCodec
from sparktts.config import AudioTokenizerConfig, BiCodecConfig
from sparktts.demo_llm import write_demo_llm
from sparktts.llm import GenerationParams, SmallBatchLinear, SparkLM
from sparktts.llm_onnx import OnnxBatch, OnnxSparkLM
from sparktts.official import BICODEC_CONFIG, LLM_CONFIG, WAV2VEC2_CONFIG
from sparktts.onnx_export import export_llm
from sparktts.wav2vec2_features import MIX_LAYERS, Wav2Vec2LayerMix
from sparktts.wav2vec2_model import Wav2Vec2Config as OurWav2Vec2Config
from sparktts.wav2vec2_model import Wav2Vec2Model as OurWav2Vec2Model
from sparktts.wav2vec2_model import runtime_state

TOKEN_RATE = 50
ONNX_ROW = "onnxruntime int8 (llm_backend=onnxruntime)"


def best_time(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def random_init_(module: torch.nn.Module, seed: int) -> None:
    """Fast random weights for a meta-built module: N(0, 0.02) matrices, ones for 1-D parameters."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            if param.dim() == 1:
                param.fill_(1.0)
            else:
                param.normal_(0.0, 0.02, generator=generator)


def build_llm(layers: int, seed: int) -> Qwen2ForCausalLM:
    config = Qwen2Config(**{**LLM_CONFIG, "num_hidden_layers": layers})
    with torch.device("meta"):
        model = Qwen2ForCausalLM(config)
    model = model.to_empty(device="cpu")
    random_init_(model, seed)
    model.model.rotary_emb = type(model.model.rotary_emb)(config=config)  # its buffers were left empty
    model.tie_weights()
    model.generation_config.eos_token_id = None  # random weights: never stop early
    model.config.eos_token_id = None
    return model.eval()


def build_codec(seed: int) -> tuple[BiCodecTokenizer, Wav2Vec2Model]:
    torch.manual_seed(seed)
    bicodec = BiCodec(BiCodecConfig.from_dict(BICODEC_CONFIG)).eval()
    if bicodec.decoder is None:
        raise SystemExit("the BiCodec build has no decoder")
    bicodec.decoder.prepare_for_inference()
    w2v_config = Wav2Vec2Config(**WAV2VEC2_CONFIG)
    w2v = Wav2Vec2Model(w2v_config).eval()
    torch.nn.utils.parametrize.remove_parametrizations(w2v.encoder.pos_conv_embed.conv, "weight")
    ours_config = OurWav2Vec2Config.from_dict({**WAV2VEC2_CONFIG, "num_hidden_layers": max(MIX_LAYERS)})
    ours = OurWav2Vec2Model(ours_config)
    ours.load_state_dict(runtime_state(w2v.state_dict(), ours_config, source="bench"))  # the same weights
    mix = Wav2Vec2LayerMix(ours.eval(), total_layers=24)
    return BiCodecTokenizer(AudioTokenizerConfig(), bicodec, mix), w2v


def official_tokenize(codec: BiCodecTokenizer, w2v: Wav2Vec2Model, wav: np.ndarray) -> None:
    """Upstream's tokenize: all 24 layers with every hidden state, then the same BiCodec calls."""
    if codec.wav2vec2 is None:
        raise SystemExit("the codec was built without wav2vec2")
    with torch.inference_mode():
        inputs = codec.wav2vec2.prepare(wav)
        hidden = w2v(inputs, output_hidden_states=True).hidden_states
        feats = sum(hidden[i] for i in MIX_LAYERS) / 3
        codec.model.quantizer.tokenize(codec.model.encode(feats))
        clip = np.resize(wav, codec.config.ref_segment_length).astype(np.float32)[None]
        codec.model.speaker_encoder.tokenize(codec.model.mel(torch.from_numpy(clip)).transpose(1, 2))


def set_fast_matmul(model: torch.nn.Module, on: bool) -> None:
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            module.__class__ = SmallBatchLinear if on else torch.nn.Linear


def decode_call(model: Qwen2ForCausalLM, lm: SparkLM, path: str, prompt: torch.Tensor, new: int,
                seeded: bool) -> Callable[[], object]:
    """One generation of ``new`` tokens: ``official`` = HF generate, ``exact`` / ``restrict`` = SparkLM
    (seeded rows draw HF's full-vocabulary random numbers; unseeded ones the cheaper equivalent)."""
    if path == "official":
        kwargs = {"max_new_tokens": new, "min_new_tokens": new, "do_sample": True, "top_k": 50, "top_p": 0.95,
                  "temperature": 0.8, "attention_mask": torch.ones_like(prompt), "pad_token_id": 0}
        return lambda: model.generate(prompt, **kwargs)
    params = [GenerationParams(max_new_tokens=new, seed=row if seeded else None, restrict_vocab=path == "restrict")
              for row in range(prompt.shape[0])]
    return lambda: [None for _ in lm.decode_steps(prompt, torch.ones_like(prompt), params)]


def time_decode(model: Qwen2ForCausalLM, lm: SparkLM, configs: list[tuple[str, str, bool, bool]],
                prompts: dict[int, torch.Tensor], steps: int, repeats: int) -> dict[str, dict[str, float]]:
    """Per config: prefill+first-token seconds (batch 1) and seconds per step at batch 1 and 4.

    Configs are interleaved within each repeat so that load changes on a shared box hit all alike.
    """
    best: dict[tuple[str, int, int], float] = {}
    for _ in range(repeats):
        for name, path, fast, seeded in configs:
            set_fast_matmul(model, fast)
            for batch, prompt in prompts.items():
                for new in (1, 1 + steps):
                    with torch.inference_mode():
                        elapsed = best_time(decode_call(model, lm, path, prompt, new, seeded), 1)
                    key = (name, batch, new)
                    best[key] = min(best.get(key, elapsed), elapsed)
    set_fast_matmul(model, False)
    return {name: {"prefill": best[(name, 1, 1)],
                   **{f"step{b}": (best[(name, b, 1 + steps)] - best[(name, b, 1)]) / steps for b in prompts}}
            for name, *_ in configs}


def onnx_lm(model: Qwen2ForCausalLM, tokenizer_dir: Path, cache: Path, threads: int) -> OnnxSparkLM:
    """The int8 export of ``model`` (written as an official ``LLM/`` folder first; cached by hash)."""
    with tempfile.TemporaryDirectory() as tmp:
        llm_dir = Path(tmp) / "LLM"
        model.save_pretrained(str(llm_dir))
        for path in tokenizer_dir.iterdir():
            if path.name not in ("config.json", "model.safetensors", "generation_config.json"):
                (llm_dir / path.name).write_bytes(path.read_bytes())
        start = time.perf_counter()
        onnx_dir = export_llm(llm_dir, cache, "int8")
        print(f"ONNX int8 export ready in {time.perf_counter() - start:.0f} s ({onnx_dir})", flush=True)
        return OnnxSparkLM.from_pretrained(llm_dir, onnx_dir, threads=threads)


def time_onnx(lm: OnnxSparkLM, prompts: dict[int, torch.Tensor], steps: int, repeats: int) -> dict[str, float]:
    """``time_decode``'s figures for the onnxruntime backend (unseeded rows, every row of a step in one run).

    Rows join one by one (each runs its own prefill), so a step is timed after the joins: with the joins
    inside, four prefills' noise (~0.3 s each) would swamp 24 steps of ~50 ms."""

    def run(prompt: torch.Tensor, new: int) -> tuple[float, float]:
        batch = OnnxBatch(lm)
        start = time.perf_counter()
        for row in range(prompt.shape[0]):
            batch.join(row, prompt[row : row + 1], GenerationParams(max_new_tokens=new))
        joined = time.perf_counter()
        while len(batch):
            batch.step()
        return joined - start, time.perf_counter() - joined

    best = {(batch, new): [min(values) for values in zip(*(run(prompt, new) for _ in range(repeats)), strict=True)]
            for batch, prompt in prompts.items() for new in (1, 1 + steps)}
    return {"prefill": best[(1, 1)][0],
            **{f"step{b}": (best[(b, 1 + steps)][1] - best[(b, 1)][1]) / steps for b in prompts}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ref-seconds", type=float, default=6.0)
    parser.add_argument("--out-seconds", type=float, default=5.0)
    parser.add_argument("--prompt-tokens", type=int, default=400)
    parser.add_argument("--decode-steps", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--llm-layers", type=int, default=24, help="fewer for a quick smoke run")
    parser.add_argument("--bf16", action="store_true", help="also time the bfloat16 LLM (opt-in, inexact)")
    parser.add_argument("--onnx-cache", type=Path, default=None,
                        help="also time the onnxruntime backend (int8), its export cached in this folder")
    parser.add_argument("--torch-rows", choices=("all", "default"), default="all",
                        help="default: time only the torch default path (the 'vs' column is then against it)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)

    print(f"building models (threads={args.threads}) ...", flush=True)
    codec, w2v = build_codec(seed=0)
    model = build_llm(args.llm_layers, seed=0)
    with tempfile.TemporaryDirectory() as tmp:  # a tokenizer with the Spark vocabulary (ids differ)
        tokenizer_dir = write_demo_llm(Path(tmp) / "LLM")
        tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
        onnx = None if args.onnx_cache is None else onnx_lm(model, tokenizer_dir, args.onnx_cache, args.threads)
    lm = SparkLM(model, tokenizer)
    ref = (0.1 * rng.standard_normal(int(16000 * args.ref_seconds))).astype(np.float32)
    semantic = torch.from_numpy(rng.integers(0, 8192, (1, int(TOKEN_RATE * args.out_seconds))))
    glob = torch.from_numpy(rng.integers(0, 4096, (1, 32)))
    prompt1 = torch.from_numpy(rng.integers(0, 151000, (1, args.prompt_tokens)))
    prompt4 = torch.from_numpy(rng.integers(0, 151000, (4, args.prompt_tokens)))

    print("timing tokenize / detokenize ...", flush=True)
    tok_official = best_time(lambda: official_tokenize(codec, w2v, ref), args.repeats)
    tok_ours = best_time(lambda: codec.tokenize(ref), args.repeats)
    detok = best_time(lambda: codec.detokenize(glob, semantic), args.repeats)

    print("timing LLM decode ...", flush=True)
    steps, reps = args.decode_steps, args.repeats
    configs = [("official HF generate fp32", "official", False, False),
               ("SparkLM fast_matmul=False, seeded (official ids)", "exact", False, True),
               ("SparkLM fast_matmul=False", "exact", False, False),
               ("SparkLM default on CPU (fast_matmul)", "exact", True, False),
               ("SparkLM fast_matmul+restrict_vocab (opt-in)", "restrict", True, False)]
    if args.torch_rows == "default":
        configs = [config for config in configs if config[0].startswith("SparkLM default")]
    timings = time_decode(model, lm, configs, {1: prompt1, 4: prompt4}, steps, reps)
    if onnx is not None:  # as the spark_tts stub runs it: torch keeps one thread (threads_for_the_engine)
        torch.set_num_threads(1)
        timings[ONNX_ROW] = time_onnx(onnx, {1: prompt1, 4: prompt4}, steps, reps)
        torch.set_num_threads(args.threads)
    if args.bf16:
        model.to(torch.bfloat16)
        bf16 = [("SparkLM bf16 fast_matmul+restrict (opt-in)", "restrict", True, False)]
        timings.update(time_decode(model, lm, bf16, {1: prompt1, 4: prompt4}, steps, reps))
    rows: dict[str, dict[str, float]] = {}
    for name, timing in timings.items():
        tokenize = tok_official if name.startswith("official") else tok_ours
        total = tokenize + timing["prefill"] + TOKEN_RATE * args.out_seconds * timing["step1"] + detok
        rows[name] = {"prefill": timing["prefill"], "tps1": 1 / timing["step1"], "tps4": 4 / timing["step4"],
                      "e2e": total, "rtf": total / args.out_seconds}

    base = rows.get("official HF generate fp32", rows["SparkLM default on CPU (fast_matmul)"])
    print()
    print(f"threads {args.threads}, LLM layers {args.llm_layers}, prompt {args.prompt_tokens} tokens, "
          f"decode steps {steps}, min of {reps} runs")
    print(f"tokenize {args.ref_seconds:g} s reference: official (24-layer w2v) {tok_official:.3f} s, "
          f"ours (16 layers) {tok_ours:.3f} s ({tok_official / tok_ours:.2f}x)")
    print(f"detokenize {args.out_seconds:g} s: {detok:.3f} s (RTF {detok / args.out_seconds:.3f}; same code both sides)")
    header = (f"{'LLM path':48s} {'prefill s':>9s} {'b1 tok/s':>9s} {'b4 tok/s':>9s} {'b4/b1':>6s} "
              f"{'e2e s':>7s} {'RTF':>6s} {'vs official':>11s}")
    print(header)
    print("-" * len(header))
    for name, row in rows.items():
        print(f"{name:48s} {row['prefill']:9.3f} {row['tps1']:9.2f} {row['tps4']:9.2f} "
              f"{row['tps4'] / row['tps1']:6.2f} {row['e2e']:7.2f} {row['rtf']:6.2f} {base['e2e'] / row['e2e']:10.2f}x")
    if ONNX_ROW in rows:
        ours, torch_row = rows[ONNX_ROW], rows["SparkLM default on CPU (fast_matmul)"]
        print(f"onnxruntime vs torch default (same process): b1 {ours['tps1'] / torch_row['tps1']:.2f}x, "
              f"b4 {ours['tps4'] / torch_row['tps4']:.2f}x, e2e {torch_row['e2e'] / ours['e2e']:.2f}x")
    median_rtf = statistics.median(r["rtf"] for r in rows.values())
    print(f"(e2e = tokenize + prefill + {TOKEN_RATE * args.out_seconds:g} decode steps + detokenize; "
          f"median RTF {median_rtf:.2f})")


if __name__ == "__main__":
    main()
