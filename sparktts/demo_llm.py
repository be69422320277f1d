"""The ``LLM/`` folder of the demo model: a Qwen2-style tokenizer and a tiny wired Qwen2.

The tokenizer is built with the ``tokenizers`` library in the Qwen2 structure (NFC normaliser,
the Qwen2 split regex + byte-level pre-tokenizer, byte-level BPE without unk) on a tiny trained
base vocabulary, followed by every added token of the official Spark-TTS vocabulary in its order:
the 22 Qwen2.5 tokens, ``<|bicodec_global_0..4095|>``, ``<|bicodec_semantic_0..8191|>``, the 10
task tokens, the attribute tokens and the 8 delimiters. Only the first 14 Qwen tokens are special:
the Spark tokens must survive ``decode(skip_special_tokens=True)``. Ids differ from the real
vocabulary (whose base BPE has 151,643 entries); code must read ids from the tokenizer files.

The weights are random except for one wired channel, so that the demo talks the Spark grammar
instead of emitting arbitrary text tokens: embedding channel 0 is +1 on semantic tokens (and the
two tokens that open the semantic section) and -1 elsewhere, no layer writes into channel 0, and
the final norm amplifies it. The tied head therefore favours semantic tokens by ~20 logits after a
clone prompt. ``<|im_end|>`` shares the semantic sign with a larger random part, so generation
ends after a short, seed-dependent number of tokens. With ``ends_speech=False`` it gets the
non-semantic sign instead, is never sampled, and every generation runs to its ``max_new_tokens``: a
workload proportional to the text for benchmarks (bench/bench_api.py), where the random stop would
make each sentence's cost a coin toss. Controllable TTS is not wired into the weights (it would need
exactly 32 global tokens): unconstrained it fails with ``SynthesisError`` on the demo, and under
``GenerationParams(control_grammar=True)`` (what the serving pipeline decodes control prompts with) the
grammar supplies the structure and the random weights the choice, so designed voices work on the demo.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from tokenizers import (
    AddedToken,
    Regex,
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)
from transformers import Qwen2Config, Qwen2ForCausalLM

from sparktts import prompts

__all__ = ["official_added_tokens", "write_demo_llm"]

QWEN_SPECIAL = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>",
    "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",
    "<|image_pad|>", "<|video_pad|>",
)
QWEN_PLAIN = (
    "<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
    "<|repo_name|>", "<|file_sep|>",
)
# (name, count) of the attribute tokens, in vocabulary order: <|age_0|> .. <|speed_label_4|>
ATTRIBUTES = (
    ("age", 5), ("gender", 2), ("emotion", 25), ("pitch_value", 1001), ("pitch_label", 5),
    ("pitch_var_value", 11), ("pitch_var_label", 5), ("loudness_value", 31), ("loudness_label", 5),
    ("speed_value", 11), ("speed_label", 5),
)
QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_TRAINING_TEXT = (
    "This is the tiny reference clip.",
    "Hello from the demo model, which speaks in random noise.",
    "The quick brown fox jumps over the lazy dog.",
    "Spark-TTS clones a voice from a short reference recording.",
    "Voice conversion then turns the speech into the character's voice.",
    "Numbers like 42 and 2025 are split one digit at a time.",
)
_BASE_MERGES = 64


def official_added_tokens() -> list[tuple[str, bool]]:
    """(content, special) of every added token, in the official vocabulary's order (13,434)."""
    tokens = [(t, True) for t in QWEN_SPECIAL] + [(t, False) for t in QWEN_PLAIN]
    tokens += [(prompts.global_token(i), False) for i in range(prompts.NUM_GLOBAL_CODES)]
    tokens += [(prompts.semantic_token(i), False) for i in range(prompts.NUM_SEMANTIC_CODES)]
    tokens += [(t, False) for t in prompts.TASK_TOKENS.values()]
    tokens += [(f"<|{name}_{i}|>", False) for name, count in ATTRIBUTES for i in range(count)]
    tokens += [(t, False) for t in prompts.DELIMITERS]
    return tokens


def _build_tokenizer() -> Tokenizer:
    tokenizer = Tokenizer(models.BPE(unk_token=None, byte_fallback=False, fuse_unk=False))
    tokenizer.normalizer = normalizers.NFC()
    byte_level = {"add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(**byte_level),
    ])
    tokenizer.decoder = decoders.ByteLevel(**byte_level)
    tokenizer.post_processor = processors.ByteLevel(**byte_level)
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    trainer = trainers.BpeTrainer(vocab_size=len(alphabet) + _BASE_MERGES, min_frequency=1, show_progress=False,
                                  initial_alphabet=alphabet, special_tokens=[])
    tokenizer.train_from_iterator(list(_TRAINING_TEXT), trainer)
    tokens = official_added_tokens()
    start = 0
    while start < len(tokens):  # one call per run of equal specialness: per-token calls are quadratic
        special = tokens[start][1]
        stop = start
        while stop < len(tokens) and tokens[stop][1] == special:
            stop += 1
        batch = [AddedToken(c, single_word=False, lstrip=False, rstrip=False, normalized=False, special=special)
                 for c, _ in tokens[start:stop]]
        (tokenizer.add_special_tokens if special else tokenizer.add_tokens)(batch)
        start = stop
    return tokenizer


def _token_entry(content: str, special: bool) -> dict[str, object]:
    return {"content": content, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False,
            "special": special}


def _write_tokenizer(tokenizer: Tokenizer, out: Path) -> dict[str, int]:
    """tokenizer.json, vocab.json, merges.txt, added_tokens.json, special_tokens_map.json, tokenizer_config.json."""
    tokenizer.save(str(out / "tokenizer.json"))
    model = json.loads((out / "tokenizer.json").read_text(encoding="utf-8"))["model"]
    (out / "vocab.json").write_text(json.dumps(model["vocab"], ensure_ascii=False), encoding="utf-8")
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    (out / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    ids: dict[str, int] = {}
    for content, _ in official_added_tokens():
        token_id = tokenizer.token_to_id(content)
        if token_id is None:
            raise ValueError(f"the demo tokenizer lost its added token {content!r}")
        ids[content] = token_id
    (out / "added_tokens.json").write_text(json.dumps(ids, indent=2), encoding="utf-8")
    entry = {k: v for k, v in _token_entry("", True).items() if k != "special"}
    special_map = {
        "additional_special_tokens": list(QWEN_SPECIAL[1:]),
        "eos_token": {**entry, "content": "<|im_end|>"},
        "pad_token": {**entry, "content": "<|endoftext|>"},
    }
    (out / "special_tokens_map.json").write_text(json.dumps(special_map, indent=2), encoding="utf-8")
    config = {
        "added_tokens_decoder": {str(ids[c]): _token_entry(c, s) for c, s in official_added_tokens()},
        "additional_special_tokens": list(QWEN_SPECIAL[1:]),
        "bos_token": None,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|im_end|>",
        "errors": "replace",
        "model_max_length": 32768,
        "pad_token": "<|endoftext|>",
        "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    return ids


def _wire(model: Qwen2ForCausalLM, ids: dict[str, int], generator: torch.Generator, *, ends_speech: bool) -> None:
    """Make the tied head prefer semantic tokens (see the module docstring)."""
    embed = model.model.embed_tokens.weight
    rows, hidden = embed.shape
    embed.copy_(torch.randn(rows, hidden, generator=generator) * 0.1)
    embed[:, 0] = -1.0
    semantic = [ids[prompts.semantic_token(i)] for i in range(prompts.NUM_SEMANTIC_CODES)]
    embed[semantic + [ids[prompts.END_GLOBAL], ids[prompts.START_SEMANTIC]], 0] = 1.0
    end = ids["<|im_end|>"]
    embed[end, 1:] *= 3.5  # a wider random part: sometimes in the top-k, so generation ends
    embed[end, 0] = 1.0 if ends_speech else -1.0
    for layer in model.model.layers:
        layer.self_attn.o_proj.weight[0].zero_()
        layer.mlp.down_proj.weight[0].zero_()
    model.model.norm.weight[0] = 2.0


def write_demo_llm(
    out: Path, *, seed: int = 0, hidden_size: int = 32, num_layers: int = 2, ends_speech: bool = True
) -> Path:
    """Write ``out`` (the ``LLM/`` folder): tokenizer files, config.json, generation_config.json,
    model.safetensors (float32, tied head, vocabulary padded to a multiple of 128 like the real one).

    ``ends_speech=False``: the model never emits its end token (see the module docstring)."""
    out.mkdir(parents=True, exist_ok=True)
    ids = _write_tokenizer(_build_tokenizer(), out)
    vocab_rows = -(-(max(ids.values()) + 1) // 128) * 128
    end_of_text, im_end = ids["<|endoftext|>"], ids["<|im_end|>"]
    config: dict[str, Any] = {
        "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": end_of_text,
        "eos_token_id": end_of_text, "hidden_act": "silu", "hidden_size": hidden_size, "initializer_range": 0.02,
        "intermediate_size": 2 * hidden_size, "max_position_embeddings": 32768, "max_window_layers": num_layers,
        "model_type": "qwen2", "num_attention_heads": 2, "num_hidden_layers": num_layers, "num_key_value_heads": 1,
        "rms_norm_eps": 1e-06, "rope_scaling": None, "rope_theta": 1000000.0, "sliding_window": None,
        "tie_word_embeddings": True, "torch_dtype": "bfloat16", "use_cache": True, "use_sliding_window": False,
        "vocab_size": vocab_rows,
    }
    (out / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    generation = {"bos_token_id": end_of_text, "eos_token_id": [im_end, end_of_text], "pad_token_id": end_of_text}
    (out / "generation_config.json").write_text(json.dumps(generation, indent=2), encoding="utf-8")

    qwen_config = Qwen2Config(**{k: v for k, v in config.items() if k not in ("architectures", "torch_dtype")})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(qwen_config)
    with torch.no_grad():
        _wire(model, ids, torch.Generator().manual_seed(seed + 1), ends_speech=ends_speech)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    return out
