"""RVC synthesizers (v1/v2 content, with or without f0) and the voice-checkpoint loader.

One ``Synthesizer`` class covers the four reference classes ``SynthesizerTrnMs{256,768}NSFsid``
and their ``_nono`` variants; ``SynthesizerConfig.version`` picks the content width and
``if_f0`` picks the NSF or plain HiFi-GAN decoder. Parameter names equal the reference's, so
an official ``.pth`` maps onto it one to one (after folding weight norm, see ``weight_norm.py``).
The posterior encoder ``enc_q`` is training-only and is not built.

Inference (``infer``): content (B, T, 256|768) at 100 frames/s + coarse pitch + f0 in Hz ->
audio (B, 1, T·hop) float32 in [-1, 1] at ``config.sample_rate``.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rvc.errors import AssetError, InvalidInput
from rvc.infer.flow import ResidualCouplingBlock
from rvc.infer.generator import HiFiGanGenerator, NsfGenerator
from rvc.infer.nsf import NoiseSource
from rvc.infer.state_dict import check_state_dict, read_tensor_file
from rvc.infer.synthesizer_config import SAMPLE_RATE_NAMES, SynthesizerConfig, official_config
from rvc.infer.text_encoder import TextEncoder
from rvc.infer.weight_norm import (
    checkpoint_layout,
    fold_weight_norm,
    normalize_weight_norm_names,
    split_weight_norm,
    weight_norm_prefixes,
)

__all__ = [
    "DEFAULT_NOISE_SCALE",
    "SynthesisOutput",
    "Synthesizer",
    "SynthesizerConfig",
    "VoiceCheckpoint",
    "load_voice_checkpoint",
    "official_config",
    "save_voice_checkpoint",
]

logger = logging.getLogger(__name__)

DEFAULT_NOISE_SCALE = 0.66666
# The realtime path gives the flow this many frames of left context before the decoded part.
STREAM_FLOW_CONTEXT = 24


@dataclass(frozen=True)
class SynthesisOutput:
    """One synthesis call: ``audio`` (B, 1, samples) plus the latents, for tests and diagnostics."""

    audio: torch.Tensor
    x_mask: torch.Tensor
    z: torch.Tensor
    z_p: torch.Tensor
    m_p: torch.Tensor
    logs_p: torch.Tensor


class Synthesizer(nn.Module):
    """The inference part of an RVC generator: ``emb_g``, ``enc_p``, ``flow``, ``dec``."""

    def __init__(self, config: SynthesizerConfig) -> None:
        super().__init__()
        self.config = config
        self.enc_p = TextEncoder(
            config.content_dim,
            config.inter_channels,
            config.hidden_channels,
            config.filter_channels,
            config.n_heads,
            config.n_layers,
            config.kernel_size,
            with_pitch=config.if_f0,
        )
        self.dec: HiFiGanGenerator = NsfGenerator(config) if config.if_f0 else HiFiGanGenerator(config)
        self.flow = ResidualCouplingBlock(
            config.inter_channels, config.hidden_channels, 5, 1, 3, gin_channels=config.gin_channels
        )
        self.emb_g = nn.Embedding(config.spk_embed_dim, config.gin_channels)

    # -- checkpoint layout ---------------------------------------------------------------------

    def checkpoint_layout(self) -> dict[str, tuple[int, ...]]:
        """Key -> shape of this model's weights in an official ``.pth`` (weight norm split in g/v)."""
        return checkpoint_layout(self)

    def load_checkpoint_weights(
        self, weights: Mapping[str, torch.Tensor], *, source: str = "checkpoint", assign: bool = False
    ) -> None:
        """Load official-layout weights (any float dtype), folding weight norm; AssetError names bad keys.

        ``enc_q.*`` keys (training-only) are ignored; every other key must match by name and shape.
        ``assign=True`` replaces the parameters instead of copying into them (for a meta-device model).
        """
        state = normalize_weight_norm_names(
            {key: value for key, value in weights.items() if not key.startswith("enc_q.")}
        )
        check_state_dict(state, self.checkpoint_layout(), source=source)
        folded = fold_weight_norm(state, weight_norm_prefixes(self))
        dtype = next(self.parameters()).dtype
        self.load_state_dict(
            {key: value.to(dtype) for key, value in folded.items()}, strict=True, assign=assign
        )

    def checkpoint_weights(self, dtype: torch.dtype = torch.float16) -> OrderedDict[str, torch.Tensor]:
        """This model's weights in the official layout (g/v split), cast to ``dtype`` like ``savee``."""
        state = {key: value.detach().float().cpu() for key, value in self.state_dict().items()}
        split = split_weight_norm(state, weight_norm_prefixes(self))
        return OrderedDict((key, split[key].to(dtype)) for key in self.checkpoint_layout())

    # -- inference -----------------------------------------------------------------------------

    @torch.inference_mode()
    def synthesize(
        self,
        phone: torch.Tensor,
        phone_lengths: torch.Tensor,
        pitch: torch.Tensor | None,
        nsff0: torch.Tensor | None,
        sid: torch.Tensor,
        *,
        noise_scale: float = DEFAULT_NOISE_SCALE,
        generator: torch.Generator | None = None,
        deterministic: bool = False,
        sine_phase: str = "running_sum",
        skip_head: int | None = None,
        return_length: int | None = None,
        return_length2: int | None = None,
    ) -> SynthesisOutput:
        """Content + pitch -> audio (B, 1, T·hop) float32 in [-1, 1] at ``config.sample_rate``, with latents.

        phone: (B, T, content_dim) float; phone_lengths: (B,) int64 (frames past it are masked);
        pitch: (B, T) int64 coarse bins 1..255 and nsff0: (B, T) float f0 in Hz (0 = unvoiced),
        both ignored (may be None) for no-f0 voices; sid: (B,) int64 speaker ids.

        Randomness, as the reference: the prior sample adds exp(logs_p)·N(0,1)·noise_scale and the
        NSF source adds Gaussian noise. ``generator`` makes a call reproducible (None = torch's
        global RNG, which reproduces the reference after ``torch.manual_seed``);
        ``deterministic=True`` replaces every draw by zero (z_p = m_p; unvoiced source = 0).
        ``sine_phase`` is the profile's NSF phase form (``rvc.infer.nsf``).

        Realtime arguments: with ``skip_head`` and ``return_length`` only frames
        [skip_head, skip_head + return_length) are decoded (the flow sees 24 frames of left
        context); ``return_length2`` resamples the decoded latent and source to that many frames.
        """
        self._check_inputs(phone, phone_lengths, pitch, nsff0, sid)
        noise = NoiseSource(generator, deterministic=deterministic, sine_phase=sine_phase)
        g = self.emb_g(sid).unsqueeze(-1)
        window = None if skip_head is None or return_length is None else (int(skip_head), int(return_length))
        if window is not None:
            head, length = window
            flow_head = max(head - STREAM_FLOW_CONTEXT, 0)
            decode_head = head - flow_head
            m_p, logs_p, x_mask = self.enc_p(phone, pitch, phone_lengths, flow_head)
        else:
            m_p, logs_p, x_mask = self.enc_p(phone, pitch, phone_lengths)
        z_p = (m_p + torch.exp(logs_p) * noise.normal(tuple(m_p.shape), m_p) * noise_scale) * x_mask
        z = self.flow.reverse(z_p, x_mask, g)
        if window is not None:
            z = z[:, :, decode_head : decode_head + length]
            x_mask = x_mask[:, :, decode_head : decode_head + length]
            if nsff0 is not None:
                nsff0 = nsff0[:, head : head + length]
        frames_out = None if return_length2 is None else int(return_length2)
        if isinstance(self.dec, NsfGenerator):
            audio = self.dec(z * x_mask, g, f0=nsff0, noise=noise, frames_out=frames_out)
        else:
            audio = self.dec(z * x_mask, g, frames_out=frames_out)
        return SynthesisOutput(audio=audio, x_mask=x_mask, z=z, z_p=z_p, m_p=m_p, logs_p=logs_p)

    def infer(
        self,
        phone: torch.Tensor,
        phone_lengths: torch.Tensor,
        pitch: torch.Tensor | None,
        nsff0: torch.Tensor | None,
        sid: torch.Tensor,
        **options: Any,
    ) -> torch.Tensor:
        """The audio (B, 1, T·hop) of :meth:`synthesize`, which documents the keyword options."""
        return self.synthesize(phone, phone_lengths, pitch, nsff0, sid, **options).audio

    def _check_inputs(
        self,
        phone: torch.Tensor,
        phone_lengths: torch.Tensor,
        pitch: torch.Tensor | None,
        nsff0: torch.Tensor | None,
        sid: torch.Tensor,
    ) -> None:
        if phone.dim() != 3 or phone.shape[-1] != self.config.content_dim:
            raise ValueError(
                f"phone must be (B, T, {self.config.content_dim}) for a {self.config.version} voice, "
                f"got {tuple(phone.shape)}"
            )
        batch, frames = phone.shape[:2]
        if tuple(phone_lengths.shape) != (batch,):
            raise ValueError(f"phone_lengths must be ({batch},), got {tuple(phone_lengths.shape)}")
        if self.config.if_f0:
            for name, tensor in (("pitch", pitch), ("nsff0", nsff0)):
                if tensor is None or tuple(tensor.shape) != (batch, frames):
                    got = None if tensor is None else tuple(tensor.shape)
                    raise ValueError(f"{name} must be ({batch}, {frames}) for an f0 voice, got {got}")
        if sid.numel() and (int(sid.min()) < 0 or int(sid.max()) >= self.config.spk_embed_dim):
            raise InvalidInput(
                f"speaker id {sid.tolist()} is out of range: this voice has {self.config.spk_embed_dim} "
                f"speaker(s), ids 0..{self.config.spk_embed_dim - 1}",
                field="speaker_id",
            )


@dataclass(frozen=True)
class VoiceCheckpoint:
    """A loaded voice: the model (eval, weight norm folded) and the checkpoint's metadata."""

    config: SynthesizerConfig
    version: str
    if_f0: bool
    sample_rate: int
    model: Synthesizer
    info: dict[str, Any] = field(default_factory=dict)


def _read_checkpoint(path: Path) -> dict[str, Any]:
    checkpoint = read_tensor_file(path, source=f"voice checkpoint {path}")
    if not isinstance(checkpoint, Mapping):
        raise AssetError(f"voice checkpoint {path} holds a {type(checkpoint).__name__}, expected a dict")
    missing = [key for key in ("weight", "config") if key not in checkpoint]
    if missing:
        raise AssetError(
            f"voice checkpoint {path} lacks {missing} (found {sorted(map(str, checkpoint))}); "
            "is it a training checkpoint (G_*.pth) instead of an exported voice?"
        )
    weights = checkpoint["weight"]
    if not isinstance(weights, Mapping) or not all(isinstance(v, torch.Tensor) for v in weights.values()):
        raise AssetError(f"voice checkpoint {path}: 'weight' must map names to tensors")
    return dict(checkpoint)


def load_voice_checkpoint(
    path: str | Path, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
) -> VoiceCheckpoint:
    """Load an official RVC voice ``.pth`` (``weight``/``config``/``info``/``sr``/``f0``/``version``).

    As the reference loader: ``version`` defaults to "v1" and ``f0`` to 1 when absent, the speaker
    count is taken from ``emb_g.weight`` rather than ``config[15]``, and the sample rate is
    ``config[17]``. fp16 weights are widened to ``dtype``. Raises AssetError naming what is wrong.
    """
    path = Path(path)
    checkpoint = _read_checkpoint(path)
    weights: Mapping[str, torch.Tensor] = checkpoint["weight"]
    version = checkpoint.get("version", "v1")
    if_f0 = checkpoint.get("f0", 1)
    if if_f0 not in (0, 1):
        raise AssetError(f"voice checkpoint {path}: 'f0' must be 0 or 1, got {if_f0!r}")
    config_list = checkpoint["config"]
    if isinstance(config_list, list | tuple) and "emb_g.weight" in weights:
        config_list = list(config_list)
        if len(config_list) >= 3:
            config_list[-3] = int(weights["emb_g.weight"].shape[0])
    try:
        config = SynthesizerConfig.from_checkpoint_list(config_list, version=version, if_f0=bool(if_f0))
    except ValueError as exc:
        raise AssetError(f"voice checkpoint {path} has an unusable config: {exc}") from exc
    sr_name = checkpoint.get("sr")
    if sr_name in SAMPLE_RATE_NAMES and SAMPLE_RATE_NAMES[sr_name] != config.sample_rate:
        logger.warning(
            "%s: 'sr' says %s but config says %d Hz; using the config", path, sr_name, config.sample_rate
        )

    with torch.device("meta"):  # skip the random init of weights that are overwritten anyway
        model = Synthesizer(config)
    model.load_checkpoint_weights(weights, source=f"voice checkpoint {path}", assign=True)
    model = model.to(device=device, dtype=dtype).eval()
    info = {key: value for key, value in checkpoint.items() if key not in ("weight", "config")}
    logger.info(
        "loaded voice %s: %s, f0=%s, %d Hz, %d speaker(s), %s on %s",
        path.name, version, bool(if_f0), config.sample_rate, config.spk_embed_dim, dtype, device,
    )  # fmt: skip
    return VoiceCheckpoint(
        config=config,
        version=version,
        if_f0=bool(if_f0),
        sample_rate=config.sample_rate,
        model=model,
        info=info,
    )


def save_voice_checkpoint(model: Synthesizer, path: str | Path, *, info: str = "") -> Path:
    """Write ``model`` as an official voice ``.pth`` (fp16 weights, weight norm split), like ``savee``."""
    config = model.config
    sr_name = next((name for name, rate in SAMPLE_RATE_NAMES.items() if rate == config.sample_rate), None)
    checkpoint = OrderedDict(
        weight=model.checkpoint_weights(torch.float16),
        config=config.to_checkpoint_list(),
        info=info,
        sr=sr_name if sr_name is not None else str(config.sample_rate),
        f0=int(config.if_f0),
        version=config.version,
    )
    path = Path(path)
    torch.save(checkpoint, path)
    return path
