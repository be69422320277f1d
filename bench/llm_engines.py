"""LLM engines for bench_llm_engines: conversion from an ``LLM/`` folder and a uniform runner each.

Every engine is optional: ``Engine.missing()`` says why one cannot run (its package is not
installed) and the bench prints that instead of a row. A runner works on token ids only (the bench
never tokenizes), decodes greedily and never stops early (random weights would stop at random), so
that every engine does the same work:

* ``prefill(prompt)``: one prompt through the model, logits of its last position;
* ``greedy(prompts, new_tokens)``: equal-length prompts decoded together (batch = len(prompts));
* ``teacher_logits(prompt, forced)``: (len(forced), V) float32, row i = the logits after
  ``prompt + forced[:i]``, computed the way the engine decodes (one token per call where it can).

Conversions write into ``out`` once and are reused while ``out/.done`` exists (the bench keys
``out`` by the LLM folder). Engines run in their own process (the bench spawns one per engine),
so that imports, threads and resident memory do not mix.
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import importlib.util
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np


class Runner(Protocol):
    def prefill(self, prompt: list[int]) -> None: ...

    def greedy(self, prompts: list[list[int]], new_tokens: int) -> None: ...

    def teacher_logits(self, prompt: list[int], forced: list[int]) -> np.ndarray: ...


@dataclass(frozen=True)
class Engine:
    """name: the row label; modules: what must import; distributions: what its install size sums."""

    name: str
    modules: tuple[str, ...]
    distributions: tuple[str, ...]
    convert: Callable[[Path, Path, int], Path]
    load: Callable[[Path, Path, int], Runner]
    note: str = ""
    scores_all_rows: bool = True  # False: fidelity against the full vocabulary is not defined

    def missing(self) -> str | None:
        for module in self.modules:
            if importlib.util.find_spec(module) is None:
                return f"python module {module!r} is not installed (pip install {self.distributions[0]})"
        return None

    def install_bytes(self) -> int:
        total = 0
        for name in self.distributions:
            try:
                files = importlib.metadata.distribution(name).files or []
            except importlib.metadata.PackageNotFoundError:
                continue
            for file in files:
                path = Path(str(file.locate()))
                if path.is_file():
                    total += path.stat().st_size
        return total


def _done(out: Path) -> bool:
    return (out / ".done").is_file()


def _mark_done(out: Path) -> None:
    (out / ".done").write_text("ok\n", encoding="utf-8")


# ---------------------------------------------------------------------------------------------- torch
class TorchRunner:
    """Our SparkLM decode loop (``fast_matmul`` on CPU; ``restrict_vocab`` optionally)."""

    def __init__(self, llm_dir: Path, threads: int, restrict: bool) -> None:
        import torch

        from sparktts.llm import GenerationParams, SparkLM

        torch.set_num_threads(threads)
        self.torch = torch
        self.lm = SparkLM.from_pretrained(llm_dir)
        self.lm.stop_ids = ()  # random weights: decode to the requested length
        self.params = GenerationParams
        self.restrict = restrict

    def _decode(self, prompts: list[list[int]], new_tokens: int) -> None:
        ids = self.torch.tensor(prompts, dtype=self.torch.long)
        params = [self.params(max_new_tokens=new_tokens, do_sample=False, restrict_vocab=self.restrict)] * len(prompts)
        for _ in self.lm.decode_steps(ids, self.torch.ones_like(ids), params):
            pass

    def prefill(self, prompt: list[int]) -> None:
        self._decode([prompt], 1)

    def greedy(self, prompts: list[list[int]], new_tokens: int) -> None:
        self._decode(prompts, new_tokens)

    def teacher_logits(self, prompt: list[int], forced: list[int]) -> np.ndarray:
        rows: list[np.ndarray] = []

        def keep(logits: Any) -> None:
            rows.append(logits[0].float().numpy().copy())

        # the sampler sees these logits; forcing means feeding ``forced`` instead of its choice
        torch, lm = self.torch, self.lm
        from transformers import DynamicCache

        cache = DynamicCache(config=lm.model.config)
        step_ids = torch.tensor([prompt], dtype=torch.long)
        with torch.inference_mode():
            for token in forced:
                out = lm.model.model(input_ids=step_ids, cache=cache, use_cache=True)
                keep(lm._logits(out.last_hidden_state[:, -1, :], self.restrict))
                step_ids = torch.tensor([[token]], dtype=torch.long)
        return np.stack(rows)


def _torch_convert(llm_dir: Path, out: Path, threads: int) -> Path:
    return llm_dir


def reference_logits(llm_dir: Path, prompt: list[int], forced: list[int], threads: int) -> np.ndarray:
    """The fp32 reference: one full-sequence forward of the transformers model, plain ``F.linear``."""
    import torch
    from transformers import Qwen2ForCausalLM

    torch.set_num_threads(threads)
    model = Qwen2ForCausalLM.from_pretrained(str(llm_dir), dtype=torch.float32).eval()
    ids = torch.tensor([prompt + forced[:-1]], dtype=torch.long)
    with torch.inference_mode():
        logits = model(input_ids=ids).logits[0, len(prompt) - 1 :]
    return logits.float().numpy()


# ---------------------------------------------------------------------------------------------- llama.cpp
_GGUF_NAMES = {
    "input_layernorm.weight": "attn_norm.weight", "post_attention_layernorm.weight": "ffn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight", "self_attn.q_proj.bias": "attn_q.bias",
    "self_attn.k_proj.weight": "attn_k.weight", "self_attn.k_proj.bias": "attn_k.bias",
    "self_attn.v_proj.weight": "attn_v.weight", "self_attn.v_proj.bias": "attn_v.bias",
    "self_attn.o_proj.weight": "attn_output.weight", "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight", "mlp.down_proj.weight": "ffn_down.weight",
}  # fmt: skip


def write_gguf_f32(llm_dir: Path, path: Path) -> None:
    """The Qwen2 ``LLM/`` folder as a float32 GGUF (gguf package): weights, hyper-parameters and the
    byte-level BPE vocabulary padded to the embedding rows, as llama.cpp's converter lays them out."""
    import gguf
    from safetensors.numpy import load_file

    config = json.loads((llm_dir / "config.json").read_text(encoding="utf-8"))
    tokenizer = json.loads((llm_dir / "tokenizer.json").read_text(encoding="utf-8"))
    vocab_rows = int(config["vocab_size"])
    tokens = [f"[PAD{i}]" for i in range(vocab_rows)]
    types = [gguf.TokenType.UNUSED] * vocab_rows
    for token, index in tokenizer["model"]["vocab"].items():
        tokens[index], types[index] = token, gguf.TokenType.NORMAL
    for added in tokenizer.get("added_tokens", []):
        index = int(added["id"])
        tokens[index] = added["content"]
        types[index] = gguf.TokenType.CONTROL if added.get("special") else gguf.TokenType.USER_DEFINED
    merges = [m if isinstance(m, str) else " ".join(m) for m in tokenizer["model"].get("merges", [])]

    writer = gguf.GGUFWriter(str(path), "qwen2")
    writer.add_context_length(int(config["max_position_embeddings"]))
    writer.add_embedding_length(int(config["hidden_size"]))
    writer.add_block_count(int(config["num_hidden_layers"]))
    writer.add_feed_forward_length(int(config["intermediate_size"]))
    writer.add_head_count(int(config["num_attention_heads"]))
    writer.add_head_count_kv(int(config["num_key_value_heads"]))
    writer.add_rope_freq_base(float(config["rope_theta"]))
    writer.add_layer_norm_rms_eps(float(config["rms_norm_eps"]))
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("qwen2")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    eos = config.get("eos_token_id")
    if isinstance(eos, int):
        writer.add_eos_token_id(eos)
    state = load_file(str(llm_dir / "model.safetensors"))
    for name, tensor in state.items():
        if name == "model.embed_tokens.weight":
            target = "token_embd.weight"
        elif name == "model.norm.weight":
            target = "output_norm.weight"
        elif name == "lm_head.weight":
            target = "output.weight"
        else:
            _, _, layer, rest = name.split(".", 3)  # model.layers.<n>.<rest>
            target = f"blk.{layer}.{_GGUF_NAMES[rest]}"
        writer.add_tensor(target, tensor.astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _llama_convert(kind: str) -> Callable[[Path, Path, int], Path]:
    def convert(llm_dir: Path, out: Path, threads: int) -> Path:
        import llama_cpp

        target = out / f"model-{kind}.gguf"
        if _done(out):
            return target
        out.mkdir(parents=True, exist_ok=True)
        source = out / "model-f32.gguf"
        write_gguf_f32(llm_dir, source)
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = {"q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0, "q4_k": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M}[kind]
        params.nthread = threads
        if llama_cpp.llama_model_quantize(str(source).encode(), str(target).encode(), ctypes.byref(params)) != 0:
            raise RuntimeError(f"llama_model_quantize to {kind} failed")
        source.unlink()
        _mark_done(out)
        return target

    return convert


class LlamaRunner:
    """llama.cpp through llama-cpp-python's C API: one context, one sequence id per batch row."""

    def __init__(self, model_path: Path, llm_dir: Path, threads: int) -> None:
        import llama_cpp

        self.api = api = llama_cpp
        api.llama_backend_init()
        self.model = api.llama_model_load_from_file(str(model_path).encode(), api.llama_model_default_params())
        if not self.model:
            raise RuntimeError(f"llama.cpp cannot load {model_path}")
        params = api.llama_context_default_params()
        params.n_ctx, params.n_batch, params.n_ubatch, params.n_seq_max = 4096, 2048, 512, 4
        params.n_threads = params.n_threads_batch = threads
        self.ctx = api.llama_init_from_model(self.model, params)
        self.vocab_rows = api.llama_vocab_n_tokens(api.llama_model_get_vocab(self.model))
        self.batch = api.llama_batch_init(2048, 0, 4)

    def _run(self, rows: list[list[int]], start: int) -> list[np.ndarray]:
        """Feed rows[s] to sequence s from position ``start``; the last position's logits of each."""
        batch, count = self.batch, 0
        for seq, tokens in enumerate(rows):
            for offset, token in enumerate(tokens):
                batch.token[count], batch.pos[count] = token, start + offset
                batch.n_seq_id[count], batch.seq_id[count][0] = 1, seq
                batch.logits[count] = offset == len(tokens) - 1
                count += 1
        batch.n_tokens = count
        if self.api.llama_decode(self.ctx, batch) != 0:
            raise RuntimeError("llama_decode failed")
        outputs, index = [], -1
        for tokens in rows:
            index += len(tokens)
            pointer = self.api.llama_get_logits_ith(self.ctx, index)
            outputs.append(np.ctypeslib.as_array(pointer, shape=(self.vocab_rows,)))
        return outputs

    def _clear(self) -> None:
        self.api.llama_memory_clear(self.api.llama_get_memory(self.ctx), True)

    def prefill(self, prompt: list[int]) -> None:
        self._clear()
        self._run([prompt], 0)

    def greedy(self, prompts: list[list[int]], new_tokens: int) -> None:
        self._clear()
        logits = self._run(prompts, 0)
        for step in range(new_tokens - 1):
            logits = self._run([[int(np.argmax(row))] for row in logits], len(prompts[0]) + step)

    def teacher_logits(self, prompt: list[int], forced: list[int]) -> np.ndarray:
        self._clear()
        rows = [self._run([prompt], 0)[0].copy()]
        for step, token in enumerate(forced[:-1]):
            rows.append(self._run([[token]], len(prompt) + step)[0].copy())
        return np.stack(rows)


# ---------------------------------------------------------------------------------------------- ONNX Runtime GenAI
def _ort_convert(precision: str) -> Callable[[Path, Path, int], Path]:
    def convert(llm_dir: Path, out: Path, threads: int) -> Path:
        if _done(out):
            return out
        from sparktts.onnx_export import (
            build_model,  # the serving export's float32 staging (see its docstring)
        )

        shutil.rmtree(out, ignore_errors=True)
        work = out.parent / f".{out.name}-work"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        build_model(llm_dir, work, precision)
        (work / "model").rename(out)
        shutil.rmtree(work, ignore_errors=True)
        _mark_done(out)
        return out

    return convert


class OrtRunner:
    def __init__(self, model_dir: Path, llm_dir: Path, threads: int) -> None:
        import onnxruntime_genai as og

        config_path = model_dir / "genai_config.json"
        config = json.loads(config_path.read_text(encoding="utf-8"))
        options = config["model"]["decoder"].setdefault("session_options", {})
        options["intra_op_num_threads"], options["inter_op_num_threads"] = threads, 1
        config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")
        self.og = og
        self.model = og.Model(str(model_dir))

    def _generator(self, batch: int, length: int) -> Any:
        params = self.og.GeneratorParams(self.model)
        params.set_search_options(max_length=length, min_length=length, do_sample=False, batch_size=batch)
        return self.og.Generator(self.model, params)

    def prefill(self, prompt: list[int]) -> None:
        generator = self._generator(1, len(prompt) + 1)
        generator.append_tokens(np.array([prompt], dtype=np.int32))
        generator.get_logits()

    def greedy(self, prompts: list[list[int]], new_tokens: int) -> None:
        generator = self._generator(len(prompts), len(prompts[0]) + new_tokens)
        generator.append_tokens(np.array(prompts, dtype=np.int32))
        for _ in range(new_tokens - 1):
            generator.generate_next_token()

    def teacher_logits(self, prompt: list[int], forced: list[int]) -> np.ndarray:
        generator = self._generator(1, len(prompt) + len(forced) + 1)
        generator.append_tokens(np.array([prompt], dtype=np.int32))
        rows = [np.asarray(generator.get_logits(), dtype=np.float32).reshape(-1).copy()]
        for token in forced[:-1]:
            generator.append_tokens(np.array([[token]], dtype=np.int32))
            rows.append(np.asarray(generator.get_logits(), dtype=np.float32).reshape(-1).copy())
        return np.stack(rows)


# ---------------------------------------------------------------------------------------------- CTranslate2
def _ct2_convert(llm_dir: Path, out: Path, threads: int) -> Path:
    if _done(out):
        return out
    import ctranslate2.converters

    shutil.rmtree(out, ignore_errors=True)
    ctranslate2.converters.TransformersConverter(str(llm_dir), load_as_float16=False).convert(
        str(out), quantization="int8", force=True)
    _mark_done(out)
    return out


class Ct2Runner:
    def __init__(self, model_dir: Path, llm_dir: Path, threads: int) -> None:
        import ctranslate2

        self.generator = ctranslate2.Generator(str(model_dir), device="cpu", compute_type="int8",
                                               intra_threads=threads, inter_threads=1)
        vocabulary = json.loads((model_dir / "vocabulary.json").read_text(encoding="utf-8"))
        self.tokens = vocabulary

    def _strings(self, ids: list[int]) -> list[str]:
        return [self.tokens[i] for i in ids]

    def prefill(self, prompt: list[int]) -> None:
        self.greedy([prompt], 1)

    def greedy(self, prompts: list[list[int]], new_tokens: int) -> None:
        self.generator.generate_batch([self._strings(p) for p in prompts], max_length=new_tokens,
                                      min_length=new_tokens, sampling_topk=1, include_prompt_in_result=False)

    def teacher_logits(self, prompt: list[int], forced: list[int]) -> np.ndarray:
        # CTranslate2 exposes logits only through a full forward (its prefill kernels)
        logits = self.generator.forward_batch([self._strings(prompt + forced[:-1])])
        return np.asarray(logits, dtype=np.float32)[0, len(prompt) - 1 :]


# ---------------------------------------------------------------------------------------------- registry
ENGINES: dict[str, Engine] = dict(
    (key, engine)
    for key, engine in (
        ("torch", Engine("torch fast_matmul (baseline)", ("torch",), ("torch",), _torch_convert,
               lambda path, llm, threads: TorchRunner(llm, threads, restrict=False))),
        ("torch-restrict", Engine("torch fast_matmul+restrict_vocab", ("torch",), ("torch",), _torch_convert,
               lambda path, llm, threads: TorchRunner(llm, threads, restrict=True),
               note="same logits as the baseline on grammar rows", scores_all_rows=False)),
        ("llama-q8_0", Engine("llama.cpp Q8_0", ("llama_cpp", "gguf"), ("llama_cpp_python",), _llama_convert("q8_0"),
                              LlamaRunner)),
        ("llama-q4_k", Engine("llama.cpp Q4_K_M", ("llama_cpp", "gguf"), ("llama_cpp_python",), _llama_convert("q4_k"),
                              LlamaRunner)),
        ("ort-int8", Engine("ORT GenAI int8", ("onnxruntime_genai", "onnx_ir"), ("onnxruntime-genai", "onnxruntime"),
               _ort_convert("int8"), OrtRunner)),
        ("ort-int4", Engine("ORT GenAI int4", ("onnxruntime_genai", "onnx_ir"), ("onnxruntime-genai", "onnxruntime"),
               _ort_convert("int4"), OrtRunner)),
        ("ct2-int8", Engine("CTranslate2 int8", ("ctranslate2",), ("ctranslate2",), _ct2_convert, Ct2Runner,
                            note="logits from a full forward")),
    )
)
