"""BiCodec: Spark-TTS's audio codec (semantic + global tokens <-> 16 kHz waveform).

Tokenize: wav2vec2 mix (B, T, 1024) -> encoder -> factorized VQ -> semantic tokens (B, T), 50 Hz;
mel of the 6 s reference clip -> speaker encoder -> 32 global tokens (B, 1, 32).
Detokenize: codebook rows -> prenet conditioned on the d-vector (+ d-vector) -> wave generator,
320 samples per semantic token.

State-dict prefixes are the official ones (``encoder``, ``decoder``, ``quantizer``,
``speaker_encoder``, ``prenet``, ``postnet``, ``mel_transformer``) so the released
``model.safetensors`` loads unchanged.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import yaml
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from sparktts.checkpoint import (
    checkpoint_layout,
    checkpoint_state,
    load_checkpoint_into,
    runtime_state_from_checkpoint,
)
from sparktts.config import BiCodecConfig
from sparktts.errors import CheckpointError
from sparktts.mel import MelSpectrogram
from sparktts.modules.feat_codec import FeatDecoder, FeatEncoder
from sparktts.modules.quantizer import FactorizedVectorQuantize
from sparktts.modules.speaker_encoder import SpeakerEncoder
from sparktts.modules.wave_generator import WaveGenerator

__all__ = ["BiCodec"]

logger = logging.getLogger(__name__)


class BiCodec(nn.Module):
    """The codec; ``with_encoder`` / ``with_decoder`` build only the tokenize or detokenize half.

    The postnet is a training-only module: it is built only with ``with_postnet=True`` (for the
    checkpoint layout) and never run.
    """

    def __init__(self, config: BiCodecConfig, *, with_encoder: bool = True, with_decoder: bool = True,
                 with_postnet: bool = False) -> None:
        super().__init__()
        self.config = config
        self.with_encoder = with_encoder
        self.with_decoder = with_decoder
        self.encoder = FeatEncoder(config.encoder) if with_encoder else None
        self.decoder = WaveGenerator(config.decoder) if with_decoder else None
        self.quantizer = FactorizedVectorQuantize(config.quantizer)
        self.speaker_encoder = SpeakerEncoder(config.speaker_encoder, with_encoder=with_encoder)
        self.prenet = FeatDecoder(config.prenet) if with_decoder else None
        self.postnet = FeatDecoder(config.postnet) if with_postnet else None
        self.mel_transformer = MelSpectrogram(config.mel_params) if with_encoder else None

    @property
    def hop_length(self) -> int:
        """Output samples per semantic token (320)."""
        return self.config.decoder.hop_length

    @staticmethod
    def checkpoint_layout(config: BiCodecConfig) -> dict[str, tuple[int, ...]]:
        """{key: shape} of the official on-disk checkpoint for ``config``, built without allocating."""
        with torch.device("meta"):
            full = BiCodec(config, with_postnet=True)
        return checkpoint_layout(full)

    @classmethod
    def from_pretrained(cls, model_dir: str | Path, *, device: str | torch.device = "cpu",
                        dtype: torch.dtype = torch.float32, with_encoder: bool = True,
                        with_decoder: bool = True) -> BiCodec:
        """Load ``<model_dir>/config.yaml`` + ``model.safetensors`` (the ``BiCodec/`` folder).

        Weight norm is folded once here; ``mel_transformer.*`` may be absent. Everything else must
        match the full official layout exactly, or :class:`CheckpointError` names the offenders.
        """
        model_dir = Path(model_dir)
        config = BiCodecConfig.from_yaml(model_dir / "config.yaml")
        weights = model_dir / "model.safetensors"
        if not weights.is_file():
            raise CheckpointError(f"BiCodec weights not found: {weights}")
        try:
            state = load_file(str(weights))
        except (SafetensorError, OSError) as exc:
            raise CheckpointError(f"cannot read {weights}: {exc}") from exc
        with torch.device("meta"):
            full = cls(config, with_postnet=True)
            model = cls(config, with_encoder=with_encoder, with_decoder=with_decoder)
        runtime = runtime_state_from_checkpoint(state, full, source=str(weights))
        # built on meta, so no random init is paid for; every tensor is then loaded or recomputed
        model.to_empty(device="cpu")
        model.reset_buffers()
        load_checkpoint_into(model, runtime)
        model.eval().to(device=device)
        model.cast(dtype)
        if model.decoder is not None:
            model.decoder.prepare_for_inference()
        logger.info("loaded BiCodec from %s (device=%s, dtype=%s, encoder=%s, decoder=%s)",
                    model_dir, device, dtype, with_encoder, with_decoder)
        return model

    def cast(self, dtype: torch.dtype) -> BiCodec:
        """Every part to ``dtype``, in place, except the mel front end: it stays float32 (torch's CPU FFT
        has no bfloat16 kernel, and the mel is a small share of tokenizing)."""
        for name, child in self.named_children():
            if name != "mel_transformer":
                child.to(dtype=dtype)
        return self

    def reset_buffers(self) -> None:
        """Recompute every derived buffer (FSQ tables, mel window and filterbank) in place."""
        for module in self.modules():
            reset = getattr(module, "reset_buffers", None)
            if module is not self and callable(reset):
                reset()

    def save_pretrained(self, model_dir: str | Path) -> Path:
        """Write ``config.yaml`` + ``model.safetensors`` in the official layout (weight_g / weight_v).

        Needs a full model (``with_postnet=True``, encoder and decoder); the mel buffers are left
        out, as in the released file. Returns ``model_dir``.
        """
        if self.encoder is None or self.prenet is None or self.postnet is None:
            raise ValueError("save_pretrained needs the full model: build BiCodec(config, with_postnet=True)")
        model_dir = Path(model_dir)
        model_dir.mkdir(parents=True, exist_ok=True)
        (model_dir / "config.yaml").write_text(yaml.safe_dump(self.config.to_dict(), sort_keys=False))
        save_file(checkpoint_state(self), str(model_dir / "model.safetensors"))
        return model_dir

    def _dtype(self) -> torch.dtype:
        return self.quantizer.codebook.weight.dtype

    def mel(self, ref_wav: torch.Tensor) -> torch.Tensor:
        """ref_wav (B, T) float32 16 kHz -> linear magnitude mel (B, n_mels, T // 320 + 1)."""
        if self.mel_transformer is None:
            raise RuntimeError("BiCodec was built with with_encoder=False: it cannot tokenize")
        return self.mel_transformer(ref_wav)

    def encode(self, feat: torch.Tensor) -> torch.Tensor:
        """wav2vec2 mix (B, T, C) -> codec latent z (B, latent_dim, T)."""
        if self.encoder is None:
            raise RuntimeError("BiCodec was built with with_encoder=False: it cannot tokenize")
        return self.encoder(feat.to(self._dtype()).transpose(1, 2))

    @torch.inference_mode()
    def tokenize(self, feat: torch.Tensor, ref_wav: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(feat (B, T, C), ref_wav (B, T_ref)) -> (semantic (B, T) int64, global (B, 1, 32) int32).

        The order is the official ``BiCodec.tokenize`` order; :class:`BiCodecTokenizer` swaps it.
        """
        semantic = self.quantizer.tokenize(self.encode(feat))
        mel = self.mel(ref_wav).to(self._dtype())
        global_tokens = self.speaker_encoder.tokenize(mel.transpose(1, 2))
        return semantic, global_tokens

    @torch.inference_mode()
    def d_vector(self, global_tokens: torch.Tensor) -> torch.Tensor:
        """global (B, 1, 32) -> speaker d-vector (B, out_dim)."""
        return self.speaker_encoder.detokenize(global_tokens)

    @torch.inference_mode()
    def detokenize(self, semantic_tokens: torch.Tensor, global_tokens: torch.Tensor) -> torch.Tensor:
        """(semantic (B, T), global (B, 1, 32)) -> waveform (B, 1, 320 T) in [-1, 1] at 16 kHz."""
        if self.decoder is None or self.prenet is None:
            raise RuntimeError("BiCodec was built with with_decoder=False: it cannot detokenize")
        z_q = self.quantizer.detokenize(semantic_tokens)
        d_vector = self.speaker_encoder.detokenize(global_tokens)
        x = self.prenet(z_q, d_vector) + d_vector.unsqueeze(-1)
        return self.decoder(x)
