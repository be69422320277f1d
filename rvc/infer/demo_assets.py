"""Tiny random-weight RVC assets in the official file layouts, for demos, CI and smoke tests.

Real voices, ``hubert_base.pt`` and ``rmvpe.pt`` cannot be downloaded everywhere, so this
writes stand-ins that go through exactly the loaders real files go through:

* ``weights/<voice>.pth``: an exported voice (``weight``/``config``/``info``/``sr``/``f0``/
  ``version``), v2, 40 kHz, f0, fp16 weights with weight norm split into g/v, no ``enc_q``;
* ``weights/<voice>.index``: a faiss ``IVF{n},Flat`` index (L2, nprobe 1) of 768-d vectors;
* ``assets/hubert/hubert_base.pt``: a fairseq training-checkpoint container (``args``,
  ``cfg`` with ``model``/``task`` sections, ``model`` state dict in fairseq key names), one
  768-wide transformer layer;
* ``assets/rmvpe/rmvpe.pt``: a plain E2E state dict with every width shrunk.

All weights are seeded random: the audio they produce is noise, never speech.
Writing takes about a second; the four files total about 8 MB.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from rvc.infer.rmvpe_net import E2E, RMVPEConfig
from rvc.infer.synthesizer import Synthesizer, save_voice_checkpoint
from rvc.infer.synthesizer_config import official_config

__all__ = ["DEMO_VOICE_NAME", "write_demo_rvc_assets"]

logger = logging.getLogger(__name__)

DEMO_VOICE_NAME = "SilverWolf_e300_s6600"
_HUBERT_WIDTH = 768  # v2 voices take 768-d content features
_HUBERT_CONV_WIDTH = 32
_HUBERT_FFN = 64
_HUBERT_CONV_POS = 4  # even, as the real 128: fairseq's SamePad drops one frame
_HUBERT_CONV_POS_GROUPS = 16
_HUBERT_FINAL_DIM = 256  # final_proj 768 -> 256 serves v1 voices too
_HUBERT_CONV_LAYERS = (
    [(_HUBERT_CONV_WIDTH, 10, 5)] + [(_HUBERT_CONV_WIDTH, 3, 2)] * 4 + [(_HUBERT_CONV_WIDTH, 2, 2)] * 2
)
_INDEX_VECTORS = 256


def _tiny_voice(seed: int) -> Synthesizer:
    config = official_config("v2", 40000, if_f0=True).replace(
        inter_channels=8,
        hidden_channels=16,
        filter_channels=32,
        n_heads=2,
        n_layers=2,
        upsample_initial_channel=64,
        spk_embed_dim=1,
        gin_channels=8,
    )
    torch.manual_seed(seed)
    return Synthesizer(config).eval()


def _fairseq_hubert_state(generator: torch.Generator) -> OrderedDict[str, torch.Tensor]:
    """Random weights in fairseq HubertModel key names and shapes (post-LN, 'default' extractor)."""

    def normal(*shape: int, std: float) -> torch.Tensor:
        return torch.randn(*shape, generator=generator) * std

    width, conv = _HUBERT_WIDTH, _HUBERT_CONV_WIDTH
    state: OrderedDict[str, torch.Tensor] = OrderedDict()
    state["mask_emb"] = torch.rand(width, generator=generator)
    state["label_embs_concat"] = normal(12, _HUBERT_FINAL_DIM, std=1.0)
    in_channels = 1
    for i, (channels, kernel, _stride) in enumerate(_HUBERT_CONV_LAYERS):
        state[f"feature_extractor.conv_layers.{i}.0.weight"] = normal(
            channels, in_channels, kernel, std=(in_channels * kernel) ** -0.5
        )
        if i == 0:  # GroupNorm (one group per channel) on the first conv only
            state["feature_extractor.conv_layers.0.2.weight"] = 1 + normal(channels, std=0.1)
            state["feature_extractor.conv_layers.0.2.bias"] = normal(channels, std=0.1)
        in_channels = channels
    state["post_extract_proj.weight"] = normal(width, conv, std=conv**-0.5)
    state["post_extract_proj.bias"] = normal(width, std=0.02)
    group_width = width // _HUBERT_CONV_POS_GROUPS
    state["encoder.pos_conv.0.bias"] = normal(width, std=0.02)
    state["encoder.pos_conv.0.weight_g"] = 1 + normal(1, 1, _HUBERT_CONV_POS, std=0.1).abs()
    state["encoder.pos_conv.0.weight_v"] = normal(width, group_width, _HUBERT_CONV_POS, std=0.05)
    prefix = "encoder.layers.0."
    for name in ("k_proj", "v_proj", "q_proj", "out_proj"):
        state[f"{prefix}self_attn.{name}.weight"] = normal(width, width, std=width**-0.5)
        state[f"{prefix}self_attn.{name}.bias"] = normal(width, std=0.02)
    state[f"{prefix}self_attn_layer_norm.weight"] = 1 + normal(width, std=0.1)
    state[f"{prefix}self_attn_layer_norm.bias"] = normal(width, std=0.1)
    state[f"{prefix}fc1.weight"] = normal(_HUBERT_FFN, width, std=width**-0.5)
    state[f"{prefix}fc1.bias"] = normal(_HUBERT_FFN, std=0.02)
    state[f"{prefix}fc2.weight"] = normal(width, _HUBERT_FFN, std=_HUBERT_FFN**-0.5)
    state[f"{prefix}fc2.bias"] = normal(width, std=0.02)
    state[f"{prefix}final_layer_norm.weight"] = 1 + normal(width, std=0.1)
    state[f"{prefix}final_layer_norm.bias"] = normal(width, std=0.1)
    state["encoder.layer_norm.weight"] = 1 + normal(width, std=0.1)
    state["encoder.layer_norm.bias"] = normal(width, std=0.1)
    state["layer_norm.weight"] = 1 + normal(conv, std=0.1)
    state["layer_norm.bias"] = normal(conv, std=0.1)
    state["final_proj.weight"] = normal(_HUBERT_FINAL_DIM, width, std=width**-0.5)
    state["final_proj.bias"] = normal(_HUBERT_FINAL_DIM, std=0.02)
    return OrderedDict((key, value.half()) for key, value in state.items())


def _fairseq_container(state: OrderedDict[str, torch.Tensor]) -> dict[str, object]:
    """fairseq's checkpoint dict: config as plain nested dicts (as fairseq saves it), no optimizer state."""
    conv_spec = str(_HUBERT_CONV_LAYERS)
    model_cfg = {
        "_name": "hubert", "label_rate": 50.0, "extractor_mode": "default", "encoder_layers": 1,
        "encoder_embed_dim": _HUBERT_WIDTH, "encoder_ffn_embed_dim": _HUBERT_FFN, "encoder_attention_heads": 2,
        "activation_fn": "gelu", "layer_type": "transformer", "dropout": 0.1, "attention_dropout": 0.1,
        "activation_dropout": 0.0, "encoder_layerdrop": 0.0, "final_dim": _HUBERT_FINAL_DIM,
        "untie_final_proj": False, "layer_norm_first": False, "conv_feature_layers": conv_spec,
        "conv_bias": False, "conv_pos": _HUBERT_CONV_POS, "conv_pos_groups": _HUBERT_CONV_POS_GROUPS,
        "conv_pos_batch_norm": False,
    }  # fmt: skip
    task_cfg = {
        "_name": "hubert_pretraining", "data": "/placeholder/data", "labels": ["km"], "label_rate": 50.0,
        "sample_rate": 16000, "normalize": False, "enable_padding": False,
    }  # fmt: skip
    return {
        "args": None,
        "cfg": {"_name": None, "common": {"seed": 1}, "model": model_cfg, "task": task_cfg},
        "model": state,
        "criterion": None,
        "optimizer_history": [{"criterion_name": "HubertCriterion", "optimizer_name": "FairseqAdam",
                               "lr_scheduler_state": {"best": None}, "num_updates": 1}],
        "extra_state": {"metrics": {}, "previous_training_time": 0.0},
    }  # fmt: skip


def _tiny_rmvpe_state(seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    model = E2E(RMVPEConfig(n_blocks=1, inter_layers=1, en_out_channels=1)).eval()
    return {
        key: value.half() if value.is_floating_point() else value for key, value in model.state_dict().items()
    }


def _write_index(path: Path, dim: int, seed: int) -> None:
    import faiss

    vectors = np.random.default_rng(seed).standard_normal((_INDEX_VECTORS, dim)).astype(np.float32)
    n_ivf = max(1, min(int(16 * np.sqrt(_INDEX_VECTORS)), _INDEX_VECTORS // 39))
    index = faiss.index_factory(dim, f"IVF{n_ivf},Flat")
    faiss.extract_index_ivf(index).nprobe = 1
    index.train(vectors)
    index.add(vectors)
    faiss.write_index(index, str(path))


def write_demo_rvc_assets(
    weights_dir: str | Path, assets_dir: str | Path, *, voice_name: str = DEMO_VOICE_NAME, seed: int = 0
) -> dict[str, Path]:
    """Write the four demo files; returns their paths by role (voice, index, hubert, rmvpe).

    Same ``seed`` -> same weights. Existing files at those paths are overwritten.
    """
    weights_dir, assets_dir = Path(weights_dir), Path(assets_dir)
    paths = {
        "voice": weights_dir / f"{voice_name}.pth",
        "index": weights_dir / f"{voice_name}.index",
        "hubert": assets_dir / "hubert" / "hubert_base.pt",
        "rmvpe": assets_dir / "rmvpe" / "rmvpe.pt",
    }
    for path in paths.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    voice = _tiny_voice(seed)
    save_voice_checkpoint(voice, paths["voice"], info="demo: random weights, 0 epochs")
    _write_index(paths["index"], voice.config.content_dim, seed)
    generator = torch.Generator().manual_seed(seed)
    torch.save(_fairseq_container(_fairseq_hubert_state(generator)), paths["hubert"])
    torch.save(_tiny_rmvpe_state(seed), paths["rmvpe"])
    logger.info("wrote demo RVC assets for voice %s under %s and %s", voice_name, weights_dir, assets_dir)
    return paths
