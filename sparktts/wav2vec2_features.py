"""wav2vec2-large-xlsr-53 features for BiCodec's encoder: the mean of layers 11, 14 and 16.

Spark-TTS mixes ``hidden_states[11] + [14] + [16]`` of transformers' ``Wav2Vec2Model``. In the
stable-layer-norm encoder that xlsr-53 uses, ``hidden_states[i]`` is the **raw** output of
transformer layer i (1-based); only the last entry gets the final ``encoder.layer_norm`` (in the
transformers 4.46 that the official code ran; 5.x norms none). So the mix needs the first 16
layers and no final norm: we load only 16 layers (skipping 17..24, about a quarter of the forward
pass) and run them ourselves, reading each layer's raw output.

The model is our own torch port (``sparktts.wav2vec2_model``, same state-dict names), not
transformers': this module is what the audio-tokenizer Triton stub imports at every tritonserver
start, and transformers' wav2vec2 brought transformers' modeling stack with it (modeling utilities,
scipy.optimize, sympy). That made the stub the last of the four to load after a server death, at
6-8 CPU seconds against the others' ~4; with the port it is ~4 like them, and the import of this
module costs milliseconds (``bench/bench_triton_restart.py`` prints the per-stub CPU seconds). The
parity tests hold the port to transformers' outputs.

Input normalisation copies ``Wav2Vec2FeatureExtractor`` (``do_normalize``): per utterance, in
float32, ``(x - mean) / sqrt(var + 1e-7)`` with the population variance.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

from sparktts.errors import CheckpointError
from sparktts.wav2vec2_model import Wav2Vec2Config, Wav2Vec2Model

__all__ = ["MIX_LAYERS", "Wav2Vec2LayerMix", "normalize_wav2vec2_input"]

logger = logging.getLogger(__name__)

MIX_LAYERS = (11, 14, 16)  # 1-based transformer layers whose raw outputs are averaged
SAMPLE_RATE = 16000
MIN_SAMPLES = 400  # the conv front end's receptive field: fewer samples give no frame
_NORM_EPS = 1e-7


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
        # With exactly 16 layers the reference's hidden_states[16] is the final-normed output.
        self.final_norm_on_last = total_layers == max(MIX_LAYERS)

    @classmethod
    def from_pretrained(cls, model_dir: str | Path, *, device: str | torch.device = "cpu",
                        dtype: torch.dtype = torch.float32) -> Wav2Vec2LayerMix:
        """Load ``wav2vec2-large-xlsr-53/`` (config.json + weights) keeping only the layers the mix reads."""
        model_dir = Path(model_dir)
        total = Wav2Vec2Config.from_pretrained(model_dir).num_hidden_layers
        do_normalize = _read_preprocessor(model_dir)
        keep = min(total, max(MIX_LAYERS))
        model = Wav2Vec2Model.from_pretrained(model_dir, num_layers=keep)
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
        hidden = self.model.embed(input_values.to(self.dtype))
        outputs: dict[int, torch.Tensor] = {}
        for number, layer in enumerate(self.model.encoder.layers[: max(MIX_LAYERS)], start=1):
            hidden = layer(hidden)
            if number in MIX_LAYERS:
                outputs[number] = hidden
        if self.final_norm_on_last:
            outputs[max(MIX_LAYERS)] = self.model.encoder.layer_norm(outputs[max(MIX_LAYERS)])
        return outputs

    def forward(self, input_values: torch.Tensor) -> torch.Tensor:
        """input_values (B, T) already normalised -> mix (B, frames, hidden)."""
        outputs = self.layer_outputs(input_values)
        first, second, third = (outputs[n] for n in MIX_LAYERS)
        return (first + second + third) / 3

