"""A complete, tiny, random-weight Spark-TTS folder in the official Spark-TTS-0.5B layout.

Where the real checkpoint cannot be downloaded (CI, this machine), ``write_demo_model`` writes::

    config.yaml                          top-level audio config (the four keys inference reads)
    BiCodec/config.yaml                  under `audio_tokenizer:`, tiny widths, real 8192-code VQ
    BiCodec/model.safetensors            float16, weight norm stored as weight_g / weight_v
    LLM/...                              see sparktts.demo_llm (tokenizer + tiny wired Qwen2)
    wav2vec2-large-xlsr-53/config.json   xlsr-53 flags, tiny sizes, 17 layers (the mix reads 16)
    wav2vec2-large-xlsr-53/preprocessor_config.json
    wav2vec2-large-xlsr-53/pytorch_model.bin   pre-training checkpoint form (`wav2vec2.` prefix,
                                         quantizer / project heads, old-style pos-conv weight norm)

Everything loads through the same ``from_pretrained`` code as the real model. Random weights
give noise, not speech; the folder exists so every code path runs (about 21 MB, written in about
a second). The ECAPA trunk of the speaker encoder is 512 channels wide whatever the config says,
which is most of BiCodec's size.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch
import yaml
from safetensors.torch import save_file
from transformers import Wav2Vec2Config, Wav2Vec2ForPreTraining

from sparktts.bicodec import BiCodec
from sparktts.config import BiCodecConfig
from sparktts.demo_llm import write_demo_llm
from sparktts.modules.weight_norm import is_weight_normed
from sparktts.official import BICODEC_CONFIG

__all__ = ["write_demo_model"]

TOP_CONFIG = {
    "highpass_cutoff_freq": 40,
    "sample_rate": 16000,
    "segment_duration": 2.4,
    "max_val_duration": 12,
    "latent_hop_length": 320,
    "ref_segment_duration": 6,
    "volume_normalize": True,
}
W2V_HIDDEN = 32


def _bicodec_config() -> dict:
    """The official BiCodec config with its widths shrunk; rates, kernels, codebook and token counts kept."""
    vocos = {"vocos_dim": 32, "vocos_intermediate_dim": 64}
    shrunk = {
        "encoder": {"input_channels": W2V_HIDDEN, **vocos, "vocos_num_layers": 2, "out_channels": 48},
        "decoder": {"input_channel": 48, "channels": 64},
        "quantizer": {"input_dim": 48},
        "speaker_encoder": {"out_dim": 48, "latent_dim": 16},
        "prenet": {"input_channels": 48, **vocos, "vocos_num_layers": 2, "out_channels": 48, "condition_dim": 48},
        "postnet": {"input_channels": 48, **vocos, "vocos_num_layers": 1, "out_channels": 48},
    }
    official = copy.deepcopy(BICODEC_CONFIG["audio_tokenizer"])
    return {name: {**section, **shrunk.get(name, {})} for name, section in official.items()}


def _write_bicodec(out: Path, seed: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    raw = {"audio_tokenizer": _bicodec_config()}
    (out / "config.yaml").write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BiCodec(BiCodecConfig.from_dict(raw), with_postnet=True)
    normed = {name for name, module in model.named_modules() if is_weight_normed(module)}
    state: dict[str, torch.Tensor] = {}
    for key, tensor in model.state_dict().items():
        if key.startswith("mel_transformer."):
            continue  # recomputable; the official checkpoint may omit it as well
        prefix, _, leaf = key.rpartition(".")
        if leaf == "weight" and prefix in normed:
            # store v = w and g = ||w|| (per output slice), which folds back to w exactly
            dims = tuple(range(1, tensor.dim()))
            state[f"{prefix}.weight_g"] = tensor.norm(dim=dims, keepdim=True)
            state[f"{prefix}.weight_v"] = tensor
        else:
            state[key] = tensor
    state = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in state.items()}
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})


def _write_wav2vec2(out: Path, seed: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    config = Wav2Vec2Config(
        hidden_size=W2V_HIDDEN, num_hidden_layers=17, num_attention_heads=2, intermediate_size=64,
        conv_dim=[32] * 7, conv_kernel=[10, 3, 3, 3, 3, 2, 2], conv_stride=[5, 2, 2, 2, 2, 2, 2], conv_bias=True,
        feat_extract_norm="layer", do_stable_layer_norm=True, num_conv_pos_embeddings=128,
        num_conv_pos_embedding_groups=16, codevector_dim=16, proj_codevector_dim=16, num_codevector_groups=2,
        num_codevectors_per_group=8, layer_norm_eps=1e-5, architectures=["Wav2Vec2ForPreTraining"],
    )
    config.save_pretrained(out)
    preprocessor = {"do_normalize": True, "feature_extractor_type": "Wav2Vec2FeatureExtractor", "feature_size": 1,
                    "padding_side": "right", "padding_value": 0, "return_attention_mask": True, "sampling_rate": 16000}
    (out / "preprocessor_config.json").write_text(json.dumps(preprocessor, indent=2), encoding="utf-8")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Wav2Vec2ForPreTraining(config)
    state = {}
    for key, tensor in model.state_dict().items():  # the released file predates weight-norm parametrizations
        key = key.replace("parametrizations.weight.original0", "weight_g")
        state[key.replace("parametrizations.weight.original1", "weight_v")] = tensor.detach().clone()
    torch.save(state, out / "pytorch_model.bin")


def write_demo_model(out_dir: Path, *, seed: int = 0, ends_speech: bool = True) -> Path:
    """Write a complete tiny Spark-TTS folder into ``out_dir`` (created if needed) and return it.

    Deterministic for a given ``seed``; ``SparkTTS.from_pretrained(out_dir)`` loads it.
    ``ends_speech=False`` writes an LLM that always speaks to its token budget (benchmarks).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.yaml").write_text(yaml.safe_dump(TOP_CONFIG, sort_keys=False), encoding="utf-8")
    _write_bicodec(out_dir / "BiCodec", seed)
    write_demo_llm(out_dir / "LLM", seed=seed, ends_speech=ends_speech)
    _write_wav2vec2(out_dir / "wav2vec2-large-xlsr-53", seed)
    return out_dir
