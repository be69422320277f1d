"""BiCodecTokenizer: reference audio <-> (global, semantic) tokens for a Spark-TTS-0.5B folder.

It owns the audio side of Spark-TTS: reference preparation, wav2vec2 features, BiCodec
tokenize and detokenize. A vocoder-only process loads it with ``with_encoder=False`` (no
wav2vec2, no BiCodec encoder / ECAPA); a tokenizer-only process with
``with_decoder=False`` (no prenet, no wave generator).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from sparktts.bicodec import BiCodec
from sparktts.config import AudioTokenizerConfig
from sparktts.errors import CheckpointError
from sparktts.reference import check_waveform, load_reference, reference_clip

if TYPE_CHECKING:
    from sparktts.wav2vec2_features import Wav2Vec2LayerMix

__all__ = ["BiCodecTokenizer"]

logger = logging.getLogger(__name__)

WAV2VEC2_DIR = "wav2vec2-large-xlsr-53"


class BiCodecTokenizer:
    """Tokenize 16 kHz speech into 32 global + 50/s semantic tokens, and decode tokens to speech."""

    def __init__(self, config: AudioTokenizerConfig, bicodec: BiCodec, wav2vec2: Wav2Vec2LayerMix | None) -> None:
        if bicodec.with_encoder and wav2vec2 is None:
            raise ValueError("a tokenizing BiCodec needs its wav2vec2 feature model")
        self.config = config
        self.model = bicodec
        self.wav2vec2 = wav2vec2
        self.sample_rate: int = config.sample_rate
        self.device = bicodec.quantizer.codebook.weight.device

    @classmethod
    def from_pretrained(cls, model_dir: str | Path, *, device: str | torch.device = "cpu",
                        dtype: torch.dtype = torch.float32, with_encoder: bool = True,
                        with_decoder: bool = True) -> BiCodecTokenizer:
        """Load from the Spark-TTS root (``config.yaml``, ``BiCodec/``, ``wav2vec2-large-xlsr-53/``)."""
        model_dir = Path(model_dir)
        if not model_dir.is_dir():
            raise CheckpointError(f"Spark-TTS model folder not found: {model_dir}")
        config = AudioTokenizerConfig.from_yaml(model_dir / "config.yaml")
        bicodec = BiCodec.from_pretrained(model_dir / "BiCodec", device=device, dtype=dtype,
                                          with_encoder=with_encoder, with_decoder=with_decoder)
        if bicodec.hop_length != config.latent_hop_length:
            raise CheckpointError(f"BiCodec upsamples x{bicodec.hop_length} but config.yaml says "
                                  f"latent_hop_length {config.latent_hop_length}")
        wav2vec2 = None
        if with_encoder:
            # Imported only here: a vocoder-only process (the Triton vocoder stub) has no use for it.
            from sparktts.wav2vec2_features import Wav2Vec2LayerMix

            wav2vec2 = Wav2Vec2LayerMix.from_pretrained(model_dir / WAV2VEC2_DIR, device=device, dtype=dtype)
        return cls(config, bicodec, wav2vec2)

    def prepare_reference(self, wav: np.ndarray, sample_rate: int) -> np.ndarray:
        """Decoded audio ((T,) or (T, channels)) at ``sample_rate`` -> (T',) float32 at 16 kHz.

        Channel 0, soxr VHQ resampling and (if config.yaml asks) volume normalisation, computed in
        float64 as upstream; the float32 result is what tokenize casts to anyway.
        """
        prepared = load_reference(wav, sample_rate, target_rate=self.sample_rate,
                                  volume_normalize=self.config.volume_normalize)
        return prepared.astype(np.float32)

    def _check_tokenizable(self, wav: np.ndarray) -> np.ndarray:
        if self.wav2vec2 is None:
            raise RuntimeError("BiCodecTokenizer was loaded with with_encoder=False: it cannot tokenize")
        from sparktts.wav2vec2_features import MIN_SAMPLES  # loaded with the wav2vec2 model above

        return check_waveform(wav, name="reference audio", min_samples=MIN_SAMPLES)

    def tokenize(self, wav: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """wav (T,) float32 at 16 kHz, already prepared -> (global (1, 32) int64, semantic (1, frames) int64).

        frames is wav2vec2's count at 50 Hz (56,000 samples -> 174); global tokens come from the
        first 6 s of the wav, tiled when shorter.
        """
        return self.tokenize_batch([wav])[0]

    @torch.inference_mode()
    def tokenize_batch(self, wavs: list[np.ndarray]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Tokenize several prepared wavs; each result equals :meth:`tokenize` of that wav alone.

        Wavs of equal length share one wav2vec2/encoder pass (padding would change the result:
        upstream runs wav2vec2 without an attention mask); all reference clips share one speaker
        encoder pass. Results are on the CPU.
        """
        if not wavs:
            return []
        checked = [self._check_tokenizable(wav) for wav in wavs]
        wav2vec2 = self.wav2vec2
        if wav2vec2 is None:  # _check_tokenizable refused it already; this tells the type checker
            raise RuntimeError("BiCodecTokenizer was loaded with with_encoder=False: it cannot tokenize")
        clip_length = self.config.ref_segment_length
        clips = np.stack([reference_clip(wav, clip_length).astype(np.float32) for wav in checked])
        ref_wav = torch.from_numpy(clips).to(self.device)
        mel = self.model.mel(ref_wav).to(self.model.quantizer.codebook.weight.dtype)
        global_tokens = self.model.speaker_encoder.tokenize(mel.transpose(1, 2))  # (B, 1, 32)

        semantic: dict[int, torch.Tensor] = {}
        by_length: dict[int, list[int]] = {}
        for index, wav in enumerate(checked):
            by_length.setdefault(wav.shape[0], []).append(index)
        for indices in by_length.values():
            inputs = torch.cat([wav2vec2.prepare(checked[i]) for i in indices])
            feats = wav2vec2(inputs)
            tokens = self.model.quantizer.tokenize(self.model.encode(feats))
            for row, index in enumerate(indices):
                semantic[index] = tokens[row : row + 1].cpu()
        return [(global_tokens[i, 0].unsqueeze(0).long().cpu(), semantic[i]) for i in range(len(checked))]

    @torch.inference_mode()
    def detokenize(self, global_tokens: torch.Tensor, semantic_tokens: torch.Tensor) -> np.ndarray:
        """global (B, 32) or (32,), semantic (B, T) or (T,) -> (B, 320 T) float32, or (320 T,) for 1-D semantic."""
        if not self.model.with_decoder:
            raise RuntimeError("BiCodecTokenizer was loaded with with_decoder=False: it cannot detokenize")
        semantic = torch.as_tensor(semantic_tokens)
        squeeze = semantic.dim() == 1
        semantic = semantic.unsqueeze(0) if squeeze else semantic
        glob = torch.as_tensor(global_tokens)
        glob = glob.unsqueeze(0) if glob.dim() == 1 else glob
        self._check_tokens(glob, semantic)
        wav = self.model.detokenize(semantic.to(self.device).long(), glob.to(self.device).long().unsqueeze(1))
        audio = wav[:, 0].float().cpu().numpy()
        return audio[0] if squeeze else audio

    def _check_tokens(self, glob: torch.Tensor, semantic: torch.Tensor) -> None:
        token_num = self.model.config.speaker_encoder.token_num
        global_size = self.model.config.speaker_encoder.codebook_size
        semantic_size = self.model.config.quantizer.codebook_size
        if semantic.dim() != 2 or semantic.shape[1] == 0:
            raise ValueError(f"semantic tokens must be (B, T) with T >= 1, got shape {tuple(semantic.shape)}")
        if glob.dim() != 2 or glob.shape[1] != token_num:
            raise ValueError(f"global tokens must be (B, {token_num}), got shape {tuple(glob.shape)}")
        if glob.shape[0] != semantic.shape[0]:
            raise ValueError(f"batch sizes differ: {glob.shape[0]} global rows, {semantic.shape[0]} semantic rows")
        for name, tokens, size in (("semantic", semantic, semantic_size), ("global", glob, global_size)):
            if tokens.is_floating_point() or tokens.is_complex():
                raise ValueError(f"{name} tokens must be integers, got {tokens.dtype}")
            if int(tokens.min()) < 0 or int(tokens.max()) >= size:
                raise ValueError(f"{name} token ids must lie in [0, {size}), got "
                                 f"[{int(tokens.min())}, {int(tokens.max())}]")
