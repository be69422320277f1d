"""Architecture configs for BiCodec and the audio tokenizer, read from the official YAML files.

Two files configure the audio side of a Spark-TTS-0.5B folder:

* ``<model_dir>/config.yaml``: sample rate, reference-clip duration, latent hop and the volume
  normalisation switch (:class:`AudioTokenizerConfig`);
* ``<model_dir>/BiCodec/config.yaml``: one block per BiCodec module, all under a top-level
  ``audio_tokenizer:`` key (:class:`BiCodecConfig`).

Every block is a frozen dataclass validated in ``__post_init__``; a wrong value raises
``ValueError`` naming the field, and a file that cannot be read or lacks a block raises
:class:`~sparktts.errors.CheckpointError`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, cast

from omegaconf import DictConfig, OmegaConf

from sparktts.errors import CheckpointError

__all__ = [
    "AudioTokenizerConfig",
    "BiCodecConfig",
    "FactorizedVQConfig",
    "FeatDecoderConfig",
    "FeatEncoderConfig",
    "MelConfig",
    "SpeakerEncoderConfig",
    "WaveGeneratorConfig",
    "load_config",
]


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a YAML config as a plain dict, merging a ``base_config`` file underneath it if named.

    The official loader resolves ``base_config`` against the working directory; a relative path is
    tried there first and then beside ``path``.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"config file not found: {path}")
    config = OmegaConf.load(path)
    if not isinstance(config, DictConfig):
        raise CheckpointError(f"{path}: expected a mapping at the top level")
    base = config.get("base_config", None)
    if base is not None:
        base_path = Path(str(base))
        if not base_path.is_file() and not base_path.is_absolute():
            base_path = path.parent / base_path
        if not base_path.is_file():
            raise CheckpointError(f"{path}: base_config {base!s} not found")
        merged = OmegaConf.merge(OmegaConf.load(base_path), config)
    else:
        merged = config
    container = OmegaConf.to_container(merged, resolve=True)
    if not isinstance(container, dict):
        raise CheckpointError(f"{path}: expected a mapping at the top level")
    return cast(dict[str, Any], container)  # YAML mapping keys of a config are names


def _positive(owner: str, **values: float | None) -> None:
    for name, value in values.items():
        if value is None or value <= 0:
            raise ValueError(f"{owner}.{name} must be positive, got {value!r}")


def _build(cls: type, owner: str, raw: Any, *, ignore: frozenset[str] = frozenset()) -> Any:
    """Build a config dataclass from a YAML block, rejecting keys the model does not know."""
    if not isinstance(raw, dict):
        raise CheckpointError(f"{owner}: expected a mapping, got {type(raw).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(raw) - known - ignore)
    if unknown:
        raise CheckpointError(f"{owner}: unknown keys {unknown}")
    kwargs = {}
    for key, value in raw.items():
        if key in known:
            kwargs[key] = tuple(value) if isinstance(value, list) else value
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a required key is absent
        raise CheckpointError(f"{owner}: {exc}") from exc


@dataclass(frozen=True)
class MelConfig:
    """Mel front end of the speaker encoder (torchaudio ``MelSpectrogram`` semantics)."""

    sample_rate: int = 16000
    n_fft: int = 1024
    win_length: int = 640
    hop_length: int = 320
    mel_fmin: float = 10.0
    mel_fmax: float | None = None  # None means sample_rate / 2
    num_mels: int = 128

    def __post_init__(self) -> None:
        _positive("mel_params", sample_rate=self.sample_rate, n_fft=self.n_fft,
                  win_length=self.win_length, hop_length=self.hop_length, num_mels=self.num_mels)
        if self.win_length > self.n_fft:
            raise ValueError(f"mel_params.win_length {self.win_length} exceeds n_fft {self.n_fft}")
        if self.mel_fmin < 0 or self.mel_fmin >= self.fmax:
            raise ValueError(f"mel_params.mel_fmin {self.mel_fmin} must lie in [0, {self.fmax})")
        if self.fmax > self.sample_rate / 2:
            raise ValueError(f"mel_params.mel_fmax {self.mel_fmax} is above Nyquist ({self.sample_rate / 2})")

    @property
    def fmax(self) -> float:
        return float(self.sample_rate // 2) if self.mel_fmax is None else float(self.mel_fmax)


@dataclass(frozen=True)
class FeatEncoderConfig:
    """``encoder``: wav2vec2 mix (B, T, input_channels) -> codec latent (B, out_channels, T)."""

    input_channels: int
    vocos_dim: int
    vocos_intermediate_dim: int
    vocos_num_layers: int
    out_channels: int
    sample_ratios: tuple[int, ...] = (1, 1)

    def __post_init__(self) -> None:
        _positive("encoder", input_channels=self.input_channels, vocos_dim=self.vocos_dim,
                  vocos_intermediate_dim=self.vocos_intermediate_dim,
                  vocos_num_layers=self.vocos_num_layers, out_channels=self.out_channels)
        if any(r < 1 for r in self.sample_ratios):
            raise ValueError(f"encoder.sample_ratios must be >= 1, got {self.sample_ratios}")


@dataclass(frozen=True)
class FeatDecoderConfig:
    """``prenet`` (conditioned on the d-vector) and ``postnet`` (unconditioned, training only)."""

    input_channels: int
    vocos_dim: int
    vocos_intermediate_dim: int
    vocos_num_layers: int
    out_channels: int
    condition_dim: int | None = None
    sample_ratios: tuple[int, ...] = (1, 1)
    use_tanh_at_final: bool = False

    def __post_init__(self) -> None:
        _positive("decoder block", input_channels=self.input_channels, vocos_dim=self.vocos_dim,
                  vocos_intermediate_dim=self.vocos_intermediate_dim,
                  vocos_num_layers=self.vocos_num_layers, out_channels=self.out_channels)
        if self.condition_dim is not None and self.condition_dim <= 0:
            raise ValueError(f"condition_dim must be positive or null, got {self.condition_dim}")
        if any(r < 1 for r in self.sample_ratios):
            raise ValueError(f"sample_ratios must be >= 1, got {self.sample_ratios}")


@dataclass(frozen=True)
class FactorizedVQConfig:
    """``quantizer``: the semantic-token codebook. Loss weights only matter for training."""

    input_dim: int
    codebook_size: int
    codebook_dim: int
    commitment: float = 0.25
    codebook_loss_weight: float = 1.0
    decay: float = 0.99
    threshold_ema_dead_code: float = 2.0
    momentum: float = 0.99

    def __post_init__(self) -> None:
        _positive("quantizer", input_dim=self.input_dim, codebook_size=self.codebook_size,
                  codebook_dim=self.codebook_dim)


@dataclass(frozen=True)
class SpeakerEncoderConfig:
    """``speaker_encoder``: mel -> 32 global tokens (ECAPA-TDNN, perceiver, residual FSQ) and back."""

    input_dim: int = 100
    out_dim: int = 512
    latent_dim: int = 128
    token_num: int = 32
    fsq_levels: tuple[int, ...] = (4, 4, 4, 4, 4, 4)
    fsq_num_quantizers: int = 1

    def __post_init__(self) -> None:
        _positive("speaker_encoder", input_dim=self.input_dim, out_dim=self.out_dim,
                  latent_dim=self.latent_dim, token_num=self.token_num,
                  fsq_num_quantizers=self.fsq_num_quantizers)
        if not self.fsq_levels or any(level < 2 for level in self.fsq_levels):
            raise ValueError(f"speaker_encoder.fsq_levels must be a non-empty list of ints >= 2, got {self.fsq_levels}")

    @property
    def codebook_size(self) -> int:
        return math.prod(self.fsq_levels)


@dataclass(frozen=True)
class WaveGeneratorConfig:
    """``decoder``: the DAC-style wave generator, upsampling by prod(rates) samples per frame."""

    input_channel: int
    channels: int
    rates: tuple[int, ...]
    kernel_sizes: tuple[int, ...]
    d_out: int = 1

    def __post_init__(self) -> None:
        _positive("decoder", input_channel=self.input_channel, channels=self.channels, d_out=self.d_out)
        if len(self.rates) != len(self.kernel_sizes) or not self.rates:
            raise ValueError(f"decoder.rates {self.rates} and kernel_sizes {self.kernel_sizes} must have equal, non-zero length")
        for rate, kernel in zip(self.rates, self.kernel_sizes, strict=True):
            # padding (k - s) // 2 upsamples by exactly s only when k - s is even and >= 0
            if rate < 1 or kernel < rate or (kernel - rate) % 2:
                raise ValueError(f"decoder: kernel_size {kernel} with rate {rate} does not upsample exactly x{rate}")
        if self.channels % (2 ** len(self.rates)):
            raise ValueError(f"decoder.channels {self.channels} must be divisible by 2**{len(self.rates)}")

    @property
    def hop_length(self) -> int:
        """Output samples per input frame."""
        return math.prod(self.rates)


@dataclass(frozen=True)
class BiCodecConfig:
    """Every block of ``BiCodec/config.yaml``; cross-checks the widths that modules share."""

    mel_params: MelConfig
    encoder: FeatEncoderConfig
    decoder: WaveGeneratorConfig
    quantizer: FactorizedVQConfig
    speaker_encoder: SpeakerEncoderConfig
    prenet: FeatDecoderConfig
    postnet: FeatDecoderConfig

    def __post_init__(self) -> None:
        latent = self.quantizer.input_dim
        checks = {
            "encoder.out_channels": (self.encoder.out_channels, latent),
            "prenet.input_channels": (self.prenet.input_channels, latent),
            "prenet.condition_dim": (self.prenet.condition_dim, self.speaker_encoder.out_dim),
            "prenet.out_channels": (self.prenet.out_channels, self.speaker_encoder.out_dim),
            "decoder.input_channel": (self.decoder.input_channel, self.prenet.out_channels),
            "speaker_encoder.input_dim": (self.speaker_encoder.input_dim, self.mel_params.num_mels),
        }
        for name, (value, expected) in checks.items():
            if value != expected:
                raise ValueError(f"BiCodec config: {name} is {value}, expected {expected} to fit its neighbours")

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> BiCodecConfig:
        """Build from the mapping under ``audio_tokenizer:`` (or from the whole file's mapping)."""
        if "audio_tokenizer" in raw:
            raw = raw["audio_tokenizer"]
        missing = [f.name for f in fields(cls) if f.name not in raw]
        if missing:
            raise CheckpointError(f"BiCodec config lacks the blocks {missing}")
        return cls(
            mel_params=_build(MelConfig, "mel_params", raw["mel_params"]),
            encoder=_build(FeatEncoderConfig, "encoder", raw["encoder"]),
            decoder=_build(WaveGeneratorConfig, "decoder", raw["decoder"]),
            # the released file carries `use_l2_normlize` (sic); L2 normalisation is always applied
            quantizer=_build(FactorizedVQConfig, "quantizer", raw["quantizer"],
                             ignore=frozenset({"use_l2_normlize"})),
            speaker_encoder=_build(SpeakerEncoderConfig, "speaker_encoder", raw["speaker_encoder"]),
            prenet=_build(FeatDecoderConfig, "prenet", raw["prenet"]),
            postnet=_build(FeatDecoderConfig, "postnet", raw["postnet"]),
        )

    def to_dict(self) -> dict[str, Any]:
        """The ``BiCodec/config.yaml`` mapping, ``audio_tokenizer:`` wrapper included."""
        blocks = {f.name: {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(getattr(self, f.name)).items()}
                  for f in fields(self)}
        return {"audio_tokenizer": blocks}

    @classmethod
    def from_yaml(cls, path: str | Path) -> BiCodecConfig:
        raw = load_config(path)
        if "audio_tokenizer" not in raw:
            raise CheckpointError(f"{path}: BiCodec config must sit under a top-level `audio_tokenizer:` key")
        try:
            return cls.from_dict(raw)
        except CheckpointError as exc:
            raise CheckpointError(f"{path}: {exc}") from exc


@dataclass(frozen=True)
class AudioTokenizerConfig:
    """Top-level ``config.yaml`` of a Spark-TTS folder; inference reads only these four keys."""

    sample_rate: int = 16000
    ref_segment_duration: float = 6.0
    latent_hop_length: int = 320
    volume_normalize: bool = True
    extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        _positive("config", sample_rate=self.sample_rate, ref_segment_duration=self.ref_segment_duration,
                  latent_hop_length=self.latent_hop_length)
        if self.ref_segment_length < self.latent_hop_length:
            raise ValueError(f"config.ref_segment_duration {self.ref_segment_duration} s is shorter than one latent hop")

    @property
    def ref_segment_length(self) -> int:
        """Samples in the speaker-encoder clip: 96,000 for 6 s at 16 kHz with hop 320."""
        return int(self.sample_rate * self.ref_segment_duration) // self.latent_hop_length * self.latent_hop_length

    @classmethod
    def from_yaml(cls, path: str | Path) -> AudioTokenizerConfig:
        raw = load_config(path)
        known = {f.name for f in fields(cls)} - {"extra"}
        return cls(**{k: v for k, v in raw.items() if k in known},
                   extra={k: v for k, v in raw.items() if k not in known})
