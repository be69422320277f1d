"""HuBERT / ContentVec content features for RVC, on ``transformers.HubertModel`` plus ``final_proj``.

RVC asks fairseq for ``extract_features(output_layer=N)``: layers 1..N run and layer N's output
is returned, with no final LayerNorm (post-LN model). In transformers terms that is
``hidden_states[N]`` (``hidden_states[0]`` is the encoder input after pos_conv + LayerNorm).
v2 voices take layer 12 (768-d); v1 voices take layer 9 through ``final_proj`` (768 -> 256).
A model with fewer layers than asked returns its last layer, as fairseq does.

Two sources load into the same model: the fairseq ``hubert_base.pt`` the official WebUI ships
(read without fairseq, see ``fairseq_hubert.py``) and a transformers-format folder
(``config.json`` + ``model.safetensors`` or ``pytorch_model.bin``, e.g. RVC's newer
``assets/hubert_base``). The positional conv's weight norm is folded after loading.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn.utils import parametrize
from transformers import HubertConfig, HubertModel

from rvc.errors import AssetError, InvalidInput
from rvc.infer.fairseq_hubert import hubert_config_from_fairseq, map_fairseq_state, read_fairseq_checkpoint
from rvc.infer.state_dict import check_state_dict

__all__ = ["LAYER_BY_VERSION", "ContentEncoder", "HubertWithFinalProj", "write_transformers_folder"]

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
MIN_SAMPLES = 400  # receptive field of the conv front end: one frame
LAYER_BY_VERSION = {"v1": 9, "v2": 12}
# Present in checkpoints, unused at inference (SpecAugment's mask vector); kept if missing.
_OPTIONAL_KEYS = frozenset({"masked_spec_embed"})
_POS_CONV = "encoder.pos_conv_embed.conv"
_LEGACY_RENAMES = {
    f"{_POS_CONV}.weight_g": f"{_POS_CONV}.parametrizations.weight.original0",
    f"{_POS_CONV}.weight_v": f"{_POS_CONV}.parametrizations.weight.original1",
}


class HubertWithFinalProj(HubertModel):
    """``HubertModel`` plus ContentVec's ``final_proj`` (hidden_size -> classifier_proj_size)."""

    def __init__(self, config: HubertConfig) -> None:
        super().__init__(config)
        self.final_proj = nn.Linear(config.hidden_size, config.classifier_proj_size)


def _build_and_load(
    config: HubertConfig, state: Mapping[str, torch.Tensor], *, source: str
) -> HubertWithFinalProj:
    if config.do_stable_layer_norm:
        raise AssetError(f"{source}: pre-LN HuBERT (do_stable_layer_norm) is not what RVC uses")
    with torch.device("meta"):  # no random init of ~95M parameters that are overwritten anyway
        model = HubertWithFinalProj(config)
    expected = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    state = dict(state)
    for key in _OPTIONAL_KEYS:
        if key in expected and key not in state:
            state[key] = torch.zeros(expected[key])
        elif key in state and key not in expected:
            del state[key]
    check_state_dict(state, expected, source=source)
    model.load_state_dict({key: value.float() for key, value in state.items()}, strict=True, assign=True)
    parametrize.remove_parametrizations(model.encoder.pos_conv_embed.conv, "weight", leave_parametrized=True)
    left_on_meta = [
        name for name, tensor in [*model.named_parameters(), *model.named_buffers()] if tensor.is_meta
    ]
    if left_on_meta:
        raise AssetError(f"{source}: no values for {left_on_meta}")
    return model.eval()


def _read_folder_state(folder: Path) -> dict[str, torch.Tensor]:
    safetensors_path, bin_path = folder / "model.safetensors", folder / "pytorch_model.bin"
    try:
        if safetensors_path.is_file():
            state = load_file(safetensors_path)
        elif bin_path.is_file():
            state = torch.load(bin_path, map_location="cpu", weights_only=True)
        else:
            raise AssetError(f"HuBERT folder {folder} has neither model.safetensors nor pytorch_model.bin")
    except (SafetensorError, pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as exc:
        raise AssetError(f"HuBERT weights in {folder} cannot be read: {exc}") from exc
    renamed = {}
    for key, value in state.items():
        key = key.removeprefix("hubert.")  # folders saved from HubertFor* heads
        renamed[_LEGACY_RENAMES.get(key, key)] = value
    return renamed


class ContentEncoder:
    """16 kHz audio -> RVC content features; one per process, shared by every voice (read-only)."""

    sample_rate = SAMPLE_RATE

    def __init__(self, model: HubertWithFinalProj, *, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32) -> None:  # fmt: skip
        self.model = model.to(device=device, dtype=dtype).eval()
        self.device = torch.device(device)
        self.dtype = dtype

    @classmethod
    def from_fairseq(
        cls, path: str | Path, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
    ) -> ContentEncoder:
        """Load RVC's fairseq ``hubert_base.pt`` (fp16 or fp32 tensors, ``cfg`` or legacy ``args``)."""
        source = f"HuBERT checkpoint {path}"
        state, model_cfg = read_fairseq_checkpoint(path)
        config = hubert_config_from_fairseq(model_cfg, source=source)
        model = _build_and_load(config, map_fairseq_state(state, source=source), source=source)
        logger.info("loaded HuBERT %s (%d layers, %s on %s)", path, config.num_hidden_layers, dtype, device)
        return cls(model, device=device, dtype=dtype)

    @classmethod
    def from_pretrained(
        cls, folder: str | Path, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
    ) -> ContentEncoder:
        """Load a transformers-format folder (config.json + model.safetensors / pytorch_model.bin)."""
        folder = Path(folder)
        if not (folder / "config.json").is_file():
            raise AssetError(f"HuBERT folder {folder} has no config.json")
        try:
            config = HubertConfig.from_pretrained(folder)
        except (OSError, ValueError) as exc:
            raise AssetError(f"HuBERT config in {folder} cannot be read: {exc}") from exc
        if config.model_type != "hubert":
            raise AssetError(f"{folder}/config.json describes a {config.model_type!r} model, not hubert")
        for name in (
            "hidden_dropout",
            "attention_dropout",
            "activation_dropout",
            "feat_proj_dropout",
            "layerdrop",
        ):
            setattr(config, name, 0.0)
        model = _build_and_load(config, _read_folder_state(folder), source=f"HuBERT folder {folder}")
        logger.info("loaded HuBERT %s (%d layers, %s on %s)", folder, config.num_hidden_layers, dtype, device)
        return cls(model, device=device, dtype=dtype)

    @property
    def num_layers(self) -> int:
        return int(self.model.config.num_hidden_layers)

    @torch.inference_mode()
    def layer_output(self, wav16k: torch.Tensor, layer: int) -> torch.Tensor:
        """fairseq ``extract_features(output_layer=layer)``: (B, T) audio -> (B, frames, hidden).

        frames = ⌊(T − 400)/320⌋ + 1. Runs only layers 1..min(layer, num_layers).
        """
        if wav16k.dim() == 1:
            wav16k = wav16k.unsqueeze(0)
        if wav16k.dim() != 2 or wav16k.shape[-1] < MIN_SAMPLES:
            raise InvalidInput(
                f"content features need (B, T) audio with T >= {MIN_SAMPLES} samples at 16 kHz, "
                f"got shape {tuple(wav16k.shape)}",
                field="audio",
            )
        model = self.model
        features = model.feature_extractor(wav16k.to(device=self.device, dtype=self.dtype))
        hidden = model.feature_projection(features.transpose(1, 2))
        encoder = model.encoder
        hidden = encoder.layer_norm(hidden + encoder.pos_conv_embed(hidden))
        for encoder_layer in encoder.layers[: min(layer, self.num_layers)]:
            hidden = encoder_layer(hidden, attention_mask=None)
        return hidden

    @torch.inference_mode()
    def extract(self, wav16k: torch.Tensor, version: str) -> torch.Tensor:
        """wav16k: (B, T) float32 at 16 kHz, unnormalised -> (B, frames, 256 for v1 | 768 for v2)."""
        if version not in LAYER_BY_VERSION:
            raise ValueError(f"version must be one of {sorted(LAYER_BY_VERSION)}, got {version!r}")
        hidden = self.layer_output(wav16k, LAYER_BY_VERSION[version])
        if version == "v1":
            hidden = self.model.final_proj(hidden)
        return hidden


# The WebUI's ``assets/hubert_base/preprocessor_config.json``: RVC feeds HuBERT unnormalised audio.
_PREPROCESSOR_CONFIG = """{
  "do_normalize": false,
  "feature_extractor_type": "Wav2Vec2FeatureExtractor",
  "feature_size": 1,
  "padding_side": "right",
  "padding_value": 0.0,
  "return_attention_mask": false,
  "sampling_rate": 16000
}
"""


def write_transformers_folder(fairseq_path: str | Path, folder: str | Path, *, official_layout: bool = False) -> Path:
    """Convert a fairseq ``hubert_base.pt`` into a transformers-format folder, tensors unchanged.

    The folder holds ``config.json`` and ``model.safetensors`` (weight norm still split, as
    transformers stores it) and loads with :meth:`ContentEncoder.from_pretrained`.
    ``official_layout`` writes what the WebUI's ``main`` ships in ``assets/hubert_base/`` instead:
    ``pytorch_model.bin`` plus ``preprocessor_config.json`` (the golden generator feeds it to main).
    """
    source = f"HuBERT checkpoint {fairseq_path}"
    state, model_cfg = read_fairseq_checkpoint(fairseq_path)
    config = hubert_config_from_fairseq(model_cfg, source=source)
    config.architectures = ["HubertModelWithFinalProj"]
    mapped = map_fairseq_state(state, source=source)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config.to_json_file(folder / "config.json")
    tensors = {key: value.contiguous() for key, value in mapped.items()}
    if official_layout:
        torch.save(tensors, folder / "pytorch_model.bin")
        (folder / "preprocessor_config.json").write_text(_PREPROCESSOR_CONFIG)
    else:
        save_file(tensors, folder / "model.safetensors")
    return folder
