"""wav2vec2 (stable layer norm, as in xlsr-53) in plain torch, loading transformers' checkpoints unchanged.

Why not transformers' ``Wav2Vec2Model``: importing it was most of the audio-tokenizer stub's
start-up (``sparktts.wav2vec2_features`` says how much), for a forward pass that is a conv front
end and a stack of pre-LN transformer layers. The module tree and state-dict names here are
transformers' (``feature_extractor.conv_layers.0.conv.weight``,
``encoder.layers.3.attention.q_proj.weight``, ...), so the official ``wav2vec2-large-xlsr-53``
folder (``config.json`` plus ``model.safetensors`` or ``pytorch_model.bin``) loads as it is.

Covered: the feature encoder with ``feat_extract_norm`` "layer" or "group", ``conv_bias``, the
feature projection, the grouped positional conv (its weight norm over dim 2 is folded at load from
either ``weight_g``/``weight_v`` or ``parametrizations.weight.original0``/``original1``, with the
last frame removed for an even kernel) and pre-LN encoder layers, all with gelu. Anything else
(post-LN ``do_stable_layer_norm=False``, other activations, adapters) is refused by name.
"""

from __future__ import annotations

import dataclasses
import json
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sparktts.checkpoint import key_problems
from sparktts.errors import CheckpointError

__all__ = ["Wav2Vec2Config", "Wav2Vec2Model", "read_state_dict", "runtime_state"]

# Keys a pre-training checkpoint carries that the encoder does not use.
_UNUSED_KEY = re.compile(r"^(quantizer\.|project_q\.|project_hid\.|masked_spec_embed$)")
_LAYER_KEY = re.compile(r"^encoder\.layers\.(\d+)\.")
_PREFIX = "wav2vec2."  # transformers' base_model_prefix: Wav2Vec2ForPreTraining's keys carry it
_POS_CONV = "encoder.pos_conv_embed.conv."
# The positional conv's weight norm, (g, v), in transformers' old and new key names.
_WEIGHT_NORM_NAMES = (("weight_g", "weight_v"), ("parametrizations.weight.original0", "parametrizations.weight.original1"))
# config.json field -> (the one value implemented here, transformers' default when the field is absent).
_SUPPORTED: dict[str, tuple[object, object]] = {
    "do_stable_layer_norm": (True, False),
    "hidden_act": ("gelu", "gelu"),
    "feat_extract_activation": ("gelu", "gelu"),
    "add_adapter": (False, False),
    "adapter_attn_dim": (None, None),
}


@dataclass(frozen=True)
class Wav2Vec2Config:
    """The architecture fields of a transformers ``Wav2Vec2Config`` that the forward pass reads.

    Defaults are transformers' for a field that ``config.json`` leaves out.
    """

    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    layer_norm_eps: float = 1e-5
    feat_extract_norm: str = "group"
    conv_dim: tuple[int, ...] = (512, 512, 512, 512, 512, 512, 512)
    conv_stride: tuple[int, ...] = (5, 2, 2, 2, 2, 2, 2)
    conv_kernel: tuple[int, ...] = (10, 3, 3, 3, 3, 2, 2)
    conv_bias: bool = False
    num_conv_pos_embeddings: int = 128
    num_conv_pos_embedding_groups: int = 16

    def __post_init__(self) -> None:
        if self.feat_extract_norm not in ("layer", "group"):
            raise CheckpointError(f"wav2vec2 feat_extract_norm {self.feat_extract_norm!r} is not supported "
                                  "(expected 'layer' or 'group')")
        if not len(self.conv_dim) == len(self.conv_stride) == len(self.conv_kernel) > 0:
            raise CheckpointError(f"wav2vec2 conv_dim, conv_stride and conv_kernel differ in length: "
                                  f"{self.conv_dim}, {self.conv_stride}, {self.conv_kernel}")
        if self.hidden_size % self.num_attention_heads:
            raise CheckpointError(f"wav2vec2 hidden_size {self.hidden_size} is not a multiple of "
                                  f"num_attention_heads {self.num_attention_heads}")
        if self.hidden_size % self.num_conv_pos_embedding_groups:
            raise CheckpointError(f"wav2vec2 hidden_size {self.hidden_size} is not a multiple of "
                                  f"num_conv_pos_embedding_groups {self.num_conv_pos_embedding_groups}")

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], *, source: str = "config") -> Wav2Vec2Config:
        """Read transformers' ``config.json`` fields, refusing settings this forward pass does not implement."""
        for name, (supported, default) in _SUPPORTED.items():
            value = raw.get(name, default)
            if value != supported:
                raise CheckpointError(f"{source}: wav2vec2 {name}={value!r} is not supported (only {supported!r})")
        values = {f.name: raw[f.name] for f in dataclasses.fields(cls) if f.name in raw}
        for name in ("conv_dim", "conv_stride", "conv_kernel"):
            if name in values:
                values[name] = tuple(values[name])
        return cls(**values)

    @classmethod
    def from_pretrained(cls, model_dir: str | Path) -> Wav2Vec2Config:
        path = Path(model_dir) / "config.json"
        if not path.is_file():
            raise CheckpointError(f"wav2vec2 config not found: {path}")
        try:
            raw = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"cannot read {path}: {exc}") from exc
        if not isinstance(raw, dict):
            raise CheckpointError(f"{path}: expected a JSON object")
        return cls.from_dict(raw, source=str(path))


class _ConvLayer(nn.Module):
    """One feature-encoder conv: conv, optional norm (LayerNorm over channels or per-channel GroupNorm), gelu."""

    def __init__(self, config: Wav2Vec2Config, index: int) -> None:
        super().__init__()
        channels_in = config.conv_dim[index - 1] if index > 0 else 1
        channels = config.conv_dim[index]
        self.conv = nn.Conv1d(channels_in, channels, config.conv_kernel[index], stride=config.conv_stride[index],
                              bias=config.conv_bias)
        self.layer_norm: nn.Module | None = None
        if config.feat_extract_norm == "layer":
            self.layer_norm = nn.LayerNorm(channels)  # eps 1e-5 whatever layer_norm_eps says, as transformers
        elif index == 0:  # "group": only the first conv is normed, per channel over time
            self.layer_norm = nn.GroupNorm(channels, channels)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        hidden_states = self.conv(hidden_states)
        if isinstance(self.layer_norm, nn.LayerNorm):
            hidden_states = self.layer_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        elif self.layer_norm is not None:
            hidden_states = self.layer_norm(hidden_states)
        return F.gelu(hidden_states)


class _FeatureEncoder(nn.Module):
    def __init__(self, config: Wav2Vec2Config) -> None:
        super().__init__()
        self.conv_layers = nn.ModuleList(_ConvLayer(config, i) for i in range(len(config.conv_dim)))

    def forward(self, input_values: torch.Tensor) -> torch.Tensor:
        """(B, T) -> (B, conv_dim[-1], frames)."""
        hidden_states = input_values[:, None]
        for conv_layer in self.conv_layers:
            hidden_states = conv_layer(hidden_states)
        return hidden_states


class _FeatureProjection(nn.Module):
    def __init__(self, config: Wav2Vec2Config) -> None:
        super().__init__()
        self.layer_norm = nn.LayerNorm(config.conv_dim[-1], eps=config.layer_norm_eps)
        self.projection = nn.Linear(config.conv_dim[-1], config.hidden_size)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.projection(self.layer_norm(features))


class _PositionalConvEmbedding(nn.Module):
    """Grouped conv over time; its weight is the folded weight norm of the checkpoint."""

    def __init__(self, config: Wav2Vec2Config) -> None:
        super().__init__()
        kernel = config.num_conv_pos_embeddings
        self.conv = nn.Conv1d(config.hidden_size, config.hidden_size, kernel, padding=kernel // 2,
                              groups=config.num_conv_pos_embedding_groups)
        self.remove_last = kernel % 2 == 0  # padding k//2 on both sides gives one frame too many

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """(B, frames, hidden) -> (B, frames, hidden)."""
        embedded = self.conv(hidden_states.transpose(1, 2))
        if self.remove_last:
            embedded = embedded[:, :, :-1]
        return F.gelu(embedded).transpose(1, 2)


class _Attention(nn.Module):
    def __init__(self, config: Wav2Vec2Config) -> None:
        super().__init__()
        width = config.hidden_size
        self.heads = config.num_attention_heads
        self.k_proj = nn.Linear(width, width)
        self.v_proj = nn.Linear(width, width)
        self.q_proj = nn.Linear(width, width)
        self.out_proj = nn.Linear(width, width)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """(B, frames, hidden), no mask: the tokenizer never pads."""
        batch, frames, width = hidden_states.shape
        shape = (batch, frames, self.heads, width // self.heads)
        query, key, value = (proj(hidden_states).view(shape).transpose(1, 2)
                             for proj in (self.q_proj, self.k_proj, self.v_proj))
        attended = F.scaled_dot_product_attention(query, key, value)
        return self.out_proj(attended.transpose(1, 2).reshape(batch, frames, width))


class _FeedForward(nn.Module):
    def __init__(self, config: Wav2Vec2Config) -> None:
        super().__init__()
        self.intermediate_dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.output_dense = nn.Linear(config.intermediate_size, config.hidden_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.output_dense(F.gelu(self.intermediate_dense(hidden_states)))


class _EncoderLayer(nn.Module):
    """Pre-LN: x + attention(norm(x)), then + feed_forward(norm(.))."""

    def __init__(self, config: Wav2Vec2Config) -> None:
        super().__init__()
        self.attention = _Attention(config)
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.feed_forward = _FeedForward(config)
        self.final_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        hidden_states = hidden_states + self.attention(self.layer_norm(hidden_states))
        return hidden_states + self.feed_forward(self.final_layer_norm(hidden_states))


class _Encoder(nn.Module):
    def __init__(self, config: Wav2Vec2Config) -> None:
        super().__init__()
        self.pos_conv_embed = _PositionalConvEmbedding(config)
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)  # after the last layer
        self.layers = nn.ModuleList(_EncoderLayer(config) for _ in range(config.num_hidden_layers))


class Wav2Vec2Model(nn.Module):
    """wav (B, T) float32 at 16 kHz, normalised -> per-layer hidden states (B, frames, hidden), 50 frames/s."""

    def __init__(self, config: Wav2Vec2Config) -> None:
        super().__init__()
        self.config = config
        self.feature_extractor = _FeatureEncoder(config)
        self.feature_projection = _FeatureProjection(config)
        self.encoder = _Encoder(config)

    def embed(self, input_values: torch.Tensor) -> torch.Tensor:
        """(B, T) -> the first layer's input (B, frames, hidden): transformers' ``hidden_states[0]``."""
        features = self.feature_extractor(input_values).transpose(1, 2)
        hidden_states = self.feature_projection(features)
        return hidden_states + self.encoder.pos_conv_embed(hidden_states)

    def hidden_states(self, input_values: torch.Tensor) -> list[torch.Tensor]:
        """[embedding, raw output of layer 1, ..., raw output of the last layer held].

        transformers' ``hidden_states``, except that 4.46 (the official code's) gives the last entry
        ``encoder.layer_norm``; here no entry is normed.
        """
        states = [self.embed(input_values)]
        for layer in self.encoder.layers:
            states.append(layer(states[-1]))
        return states

    def forward(self, input_values: torch.Tensor) -> torch.Tensor:
        """(B, T) -> transformers' ``last_hidden_state`` (B, frames, hidden) when every layer is held."""
        return self.encoder.layer_norm(self.hidden_states(input_values)[-1])

    @classmethod
    def from_pretrained(cls, model_dir: str | Path, *, num_layers: int | None = None) -> Wav2Vec2Model:
        """Load a transformers wav2vec2 folder, keeping only the first ``num_layers`` encoder layers.

        Weights keep the checkpoint's dtype on the CPU (memory-mapped where the file allows); move
        the model with ``.to(device, dtype)``.
        """
        model_dir = Path(model_dir)
        config = Wav2Vec2Config.from_pretrained(model_dir)
        kept = config.num_hidden_layers if num_layers is None else num_layers
        if not 0 < kept <= config.num_hidden_layers:
            raise ValueError(f"num_layers must lie in [1, {config.num_hidden_layers}], got {kept}")
        config = dataclasses.replace(config, num_hidden_layers=kept)
        state = runtime_state(read_state_dict(model_dir), config, source=str(model_dir))
        with torch.device("meta"):  # no random init of weights that are replaced right away
            model = cls(config)
        model.load_state_dict(state, strict=True, assign=True)
        return model.eval()


def read_state_dict(model_dir: Path) -> dict[str, torch.Tensor]:
    """The folder's weights as transformers picks them: ``model.safetensors``, else ``pytorch_model.bin``."""
    safetensors_path, torch_path = model_dir / "model.safetensors", model_dir / "pytorch_model.bin"
    try:
        if safetensors_path.is_file():
            from safetensors.torch import load_file

            return load_file(str(safetensors_path))
        if torch_path.is_file():
            return torch.load(torch_path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(torch_path))
    except (OSError, RuntimeError, ValueError) as exc:  # unreadable file or a pickle weights_only refuses
        raise CheckpointError(f"cannot read wav2vec2 weights in {model_dir}: {exc}") from exc
    raise CheckpointError(f"no wav2vec2 weights in {model_dir}: expected model.safetensors or pytorch_model.bin")


def runtime_state(state: Mapping[str, torch.Tensor], config: Wav2Vec2Config, *,
                  source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Check a transformers ``Wav2Vec2Model`` / ``Wav2Vec2ForPreTraining`` state dict against
    ``config`` and return what :class:`Wav2Vec2Model` loads: ``wav2vec2.`` prefix stripped,
    pre-training heads and layers past ``config.num_hidden_layers`` dropped, positional-conv
    weight norm folded (an already folded ``weight`` is taken as it is). Missing, unexpected and mis-shaped keys raise one CheckpointError naming them.
    """
    kept: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        name = key.removeprefix(_PREFIX)
        layer = _LAYER_KEY.match(name)
        if _UNUSED_KEY.match(name) or (layer and int(layer.group(1)) >= config.num_hidden_layers):
            continue
        kept[name] = tensor
    _fold_positional_weight_norm(kept)
    with torch.device("meta"):
        expected = {key: tuple(t.shape) for key, t in Wav2Vec2Model(config).state_dict().items()}
    pos_weight = _POS_CONV + "weight"
    missing = [f"{key} (as {_POS_CONV}weight_g/weight_v)" if key == pos_weight else key
               for key in expected if key not in kept]
    unexpected = [key for key in kept if key not in expected]
    mismatched = [f"{key} {tuple(kept[key].shape)} (expected {expected[key]})"
                  for key in kept if key in expected and tuple(kept[key].shape) != expected[key]]
    problems = key_problems(missing, unexpected, mismatched)
    if problems:
        raise CheckpointError(f"wav2vec2 checkpoint {source} does not fit its config: " + "; ".join(problems))
    return kept


def _fold_positional_weight_norm(state: dict[str, torch.Tensor]) -> None:
    """Replace the positional conv's (g, v) pair, in either naming, by weight = g * v / ||v|| (norm over dims 0, 1)."""
    for g_name, v_name in _WEIGHT_NORM_NAMES:
        g_key, v_key = _POS_CONV + g_name, _POS_CONV + v_name
        if g_key in state and v_key in state:
            g, v = state.pop(g_key), state.pop(v_key)
            if g.dim() != 3 or v.dim() != 3 or g.shape[2] != v.shape[2]:
                raise CheckpointError(f"{g_key} {tuple(g.shape)} and {v_key} {tuple(v.shape)} "
                                      "are not a weight norm over dim 2")
            state[_POS_CONV + "weight"] = torch._weight_norm(v.float(), g.float(), 2)  # the kernel weight_norm uses
