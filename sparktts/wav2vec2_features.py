"""wav2vec2-large-xlsr-53 features for BiCodec's encoder: the mean of layers 11, 14 and 16.

Spark-TTS mixes ``hidden_states[11] + [14] + [16]`` of transformers' ``Wav2Vec2Model``. In the
stable-layer-norm encoder that xlsr-53 uses, ``hidden_states[i]`` is the **raw** output of
transformer layer i (1-based); only the last entry gets the final ``encoder.layer_norm``. So the
mix needs the first 16 layers and no final norm: we load only 16 layers (skipping 17..24, about a
quarter of the forward pass) and run them ourselves, reading each layer's raw output. Asking HF
for ``hidden_states`` of a 16-layer model would instead return the final-normed tensor as [16].

Input normalisation copies ``Wav2Vec2FeatureExtractor`` (``do_normalize``): per utterance, in
float32, ``(x - mean) / sqrt(var + 1e-7)`` with the population variance.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import cast

import numpy as np
import torch
import transformers
from torch import nn
from transformers import Wav2Vec2Config, Wav2Vec2Model

from sparktts.checkpoint import key_problems
from sparktts.errors import CheckpointError

__all__ = ["MIX_LAYERS", "Wav2Vec2LayerMix", "normalize_wav2vec2_input"]

logger = logging.getLogger(__name__)

MIX_LAYERS = (11, 14, 16)  # 1-based transformer layers whose raw outputs are averaged
SAMPLE_RATE = 16000
MIN_SAMPLES = 400  # the conv front end's receptive field: fewer samples give no frame
_NORM_EPS = 1e-7
# Keys a pre-training checkpoint carries that Wav2Vec2Model does not use.
_UNUSED_KEY = re.compile(r"^(wav2vec2\.)?(quantizer\.|project_q\.|project_hid\.|masked_spec_embed$)")
_LAYER_KEY = re.compile(r"^(wav2vec2\.)?encoder\.layers\.(\d+)\.")


def normalize_wav2vec2_input(wav: np.ndarray) -> np.ndarray:
    """wav (T,) any float dtype -> float32 (T,) with zero mean and unit variance (eps 1e-7)."""
    values = np.asarray(wav, dtype=np.float32)
    return (values - values.mean()) / np.sqrt(values.var() + _NORM_EPS)


def _read_preprocessor(model_dir: Path) -> bool:
    """Return ``do_normalize``; refuse a feature extractor that is not 16 kHz mono."""
    path = model_dir / "preprocessor_config.json"
    if not path.is_file():
        logger.warning("%s missing; assuming the xlsr-53 defaults (16 kHz, do_normalize)", path)
        return True
    config = json.loads(path.read_text())
    if config.get("sampling_rate", SAMPLE_RATE) != SAMPLE_RATE or config.get("feature_size", 1) != 1:
        raise CheckpointError(f"{path}: expected a 16 kHz mono feature extractor, got {config}")
    return bool(config.get("do_normalize", True))


class Wav2Vec2LayerMix(nn.Module):
    """Normalised wav (B, T) float32 at 16 kHz -> layer mix (B, frames, hidden), frames = 50 per second."""

    def __init__(self, model: Wav2Vec2Model, *, total_layers: int | None = None, do_normalize: bool = True) -> None:
        """``model`` may hold only the first 16 layers; ``total_layers`` is the checkpoint's count."""
        super().__init__()
        layers = len(model.encoder.layers)
        total_layers = layers if total_layers is None else total_layers
        if min(layers, total_layers) < max(MIX_LAYERS):
            raise CheckpointError(f"wav2vec2 has {total_layers} layers; the Spark-TTS mix needs {max(MIX_LAYERS)}")
        self.model = model
        self.do_normalize = do_normalize
        self.stable_layer_norm = bool(model.config.do_stable_layer_norm)
        # With exactly 16 layers the reference's hidden_states[16] is the final-normed output.
        self.final_norm_on_last = total_layers == max(MIX_LAYERS)

    @classmethod
    def from_pretrained(cls, model_dir: str | Path, *, device: str | torch.device = "cpu",
                        dtype: torch.dtype = torch.float32) -> Wav2Vec2LayerMix:
        """Load ``wav2vec2-large-xlsr-53/`` (config.json + weights) keeping only the layers the mix reads."""
        model_dir = Path(model_dir)
        if not (model_dir / "config.json").is_file():
            raise CheckpointError(f"wav2vec2 config not found: {model_dir / 'config.json'}")
        do_normalize = _read_preprocessor(model_dir)
        total = Wav2Vec2Config.from_pretrained(model_dir).num_hidden_layers
        keep = min(total, max(MIX_LAYERS))
        verbosity = transformers.logging.get_verbosity()
        progress_bar = transformers.logging.is_progress_bar_enabled()
        transformers.logging.set_verbosity_error()  # we report unexpected keys ourselves, concisely
        transformers.logging.disable_progress_bar()
        try:
            # output_loading_info=True makes it return (model, info); its annotation does not say so
            model, info = cast(
                "tuple[Wav2Vec2Model, dict[str, list[str]]]",
                Wav2Vec2Model.from_pretrained(model_dir, num_hidden_layers=keep, output_loading_info=True),
            )
        except (OSError, RuntimeError, ValueError) as exc:
            raise CheckpointError(f"cannot load wav2vec2 from {model_dir}: {exc}") from exc
        finally:
            transformers.logging.set_verbosity(verbosity)
            if progress_bar:
                transformers.logging.enable_progress_bar()
        _check_loading_info(info, keep, source=str(model_dir))
        pos_conv = model.encoder.pos_conv_embed.conv
        if hasattr(pos_conv, "parametrizations"):  # fold the positional conv's weight norm once
            torch.nn.utils.parametrize.remove_parametrizations(pos_conv, "weight")
        mix = cls(model, total_layers=total, do_normalize=do_normalize)
        mix.eval().to(device=device, dtype=dtype)
        logger.info("loaded wav2vec2 from %s: %d of %d layers (device=%s, dtype=%s)",
                    model_dir, keep, total, device, dtype)
        return mix

    @property
    def device(self) -> torch.device:
        return self.model.feature_projection.projection.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.feature_projection.projection.weight.dtype

    def prepare(self, wav: np.ndarray) -> torch.Tensor:
        """One utterance (T,) -> model input (1, T) on the model's device, normalised if configured."""
        values = normalize_wav2vec2_input(wav) if self.do_normalize else np.asarray(wav, dtype=np.float32)
        return torch.from_numpy(values).unsqueeze(0).to(self.device)

    @torch.inference_mode()
    def layer_outputs(self, input_values: torch.Tensor) -> dict[int, torch.Tensor]:
        """input_values (B, T) -> {layer: raw output (B, frames, hidden)} for the layers in MIX_LAYERS."""
        if input_values.shape[-1] < MIN_SAMPLES:
            raise ValueError(f"wav2vec2 needs at least {MIN_SAMPLES} samples, got {input_values.shape[-1]}")
        model = self.model
        features = model.feature_extractor(input_values.to(self.dtype)).transpose(1, 2)
        hidden, _ = model.feature_projection(features)
        hidden = hidden + model.encoder.pos_conv_embed(hidden)
        if not self.stable_layer_norm:
            hidden = model.encoder.layer_norm(hidden)
        outputs: dict[int, torch.Tensor] = {}
        for number, layer in enumerate(model.encoder.layers[: max(MIX_LAYERS)], start=1):
            hidden = layer(hidden, attention_mask=None)
            if number in MIX_LAYERS:
                outputs[number] = hidden
        if self.final_norm_on_last and self.stable_layer_norm:
            outputs[max(MIX_LAYERS)] = model.encoder.layer_norm(outputs[max(MIX_LAYERS)])
        return outputs

    def forward(self, input_values: torch.Tensor) -> torch.Tensor:
        """input_values (B, T) already normalised -> mix (B, frames, hidden)."""
        outputs = self.layer_outputs(input_values)
        first, second, third = (outputs[n] for n in MIX_LAYERS)
        return (first + second + third) / 3


def _check_loading_info(info: dict, kept_layers: int, *, source: str) -> None:
    missing = sorted(k for k in info.get("missing_keys", ()) if not _UNUSED_KEY.match(k))
    unexpected = []
    for key in info.get("unexpected_keys", ()):
        layer = _LAYER_KEY.match(key)
        if _UNUSED_KEY.match(key) or (layer and int(layer.group(2)) >= kept_layers):
            continue
        unexpected.append(key)
    mismatched = [str(k) for k in info.get("mismatched_keys", ())]
    problems = key_problems(missing, unexpected, mismatched)
    if problems:
        raise CheckpointError(f"wav2vec2 checkpoint {source} does not fit its config: " + "; ".join(problems))
