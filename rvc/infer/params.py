"""Per-job value types of RVC conversion, importable without torch.

The gateway, the worker pool, the daemon and its client all build, send or
receive these values, but only a worker process holds the models. Keeping
them here, beside no model code, is what lets ``rvc.server`` and
``rvc.processing`` import them without loading torch, transformers or faiss
(tests/rvc_server/test_imports.py checks that in a fresh interpreter), and
what breaks the old ``converter.py`` <-> ``pipeline.py`` cycle: both import
from here.

Validation happens once, where a job enters the pool
(``RVCServer.submit`` calls ``ConversionParams.validate``); the converter and
the pipeline trust what they are given.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rvc.errors import InvalidInput

__all__ = [
    "CREPE_MODELS",
    "DEFAULT_PROFILE",
    "F0_METHODS",
    "MIN_INPUT_SECONDS",
    "PRECISIONS",
    "PROFILES",
    "ConversionParams",
    "ConversionResult",
    "VoiceInfo",
]

F0_METHODS = ("rmvpe", "fcpe", "pm", "harvest", "crepe")
CREPE_MODELS = ("full", "tiny")
# fp32 is exact; bf16 / fp16 trade accuracy for speed (rvc.infer.converter.decoder_dtype gives the cost).
PRECISIONS = ("fp32", "bf16", "fp16")
MIN_INPUT_SECONDS = 0.1  # shorter input has no f0 frame to convert
# Which official release RVC's inference follows (README "RVC inference profiles"): "2026" is the
# WebUI's main after its July 2026 rewrite (unvoiced pitch filled, the older NSF sine phase), "2024"
# the 20240604 release the service matched before, kept bit for bit for voices tuned against it.
PROFILES = ("2026", "2024")
DEFAULT_PROFILE = "2026"


def _check_range(name: str, value: float, low: float, high: float, *, integer: bool = False) -> None:
    kind = "an integer" if integer else "a number"
    wrong_type = isinstance(value, bool) or not isinstance(value, int if integer else (int, float))
    if wrong_type or not low <= value <= high:
        raise InvalidInput(f"{name} must be {kind} from {low:g} to {high:g}, got {value!r}", field=name)


@dataclass(frozen=True)
class ConversionParams:
    """Per-request settings (WebUI defaults). ``deterministic`` zeroes the synthesizer's noise draws."""

    pitch_shift: int = 0
    f0_method: str = "rmvpe"
    index_rate: float = 0.75
    filter_radius: int = 3
    rms_mix_rate: float = 0.25
    protect: float = 0.33
    resample_sr: int = 0
    speaker_id: int = 0
    seed: int | None = None
    deterministic: bool = False
    rvc_profile: str | None = None  # None: the converter's own default (the RVC_PROFILE setting)

    def validate(self) -> None:
        """Raise InvalidInput naming the first field outside its allowed range.

        Called where a job enters the pool; whether ``speaker_id`` exists and
        whether rmvpe / fcpe is available depend on the worker's voice and assets, so
        the converter checks those two itself.
        """
        _check_range("pitch_shift", self.pitch_shift, -24, 24, integer=True)
        if self.f0_method not in F0_METHODS:
            raise InvalidInput(
                f"f0_method must be one of {', '.join(F0_METHODS)}, got {self.f0_method!r}", field="f0_method"
            )
        _check_range("index_rate", self.index_rate, 0, 1)
        _check_range("filter_radius", self.filter_radius, 0, 7, integer=True)
        _check_range("rms_mix_rate", self.rms_mix_rate, 0, 1)
        _check_range("protect", self.protect, 0, 0.5)
        if not (isinstance(self.resample_sr, int) and not isinstance(self.resample_sr, bool)) or not (
            self.resample_sr == 0 or 8000 <= self.resample_sr <= 48000
        ):
            raise InvalidInput(
                f"resample_sr must be 0 (keep the voice's rate) or an integer from 8000 to 48000, "
                f"got {self.resample_sr!r}",
                field="resample_sr",
            )
        _check_range("speaker_id", self.speaker_id, 0, 2**31 - 1, integer=True)
        if self.seed is not None:
            _check_range("seed", self.seed, 0, 2**63 - 1, integer=True)
        if self.rvc_profile is not None and self.rvc_profile not in PROFILES:
            raise InvalidInput(
                f"rvc_profile must be one of {', '.join(PROFILES)}, got {self.rvc_profile!r}", field="rvc_profile"
            )
        if not isinstance(self.deterministic, bool):
            raise InvalidInput(
                f"deterministic must be true or false, got {self.deterministic!r}", field="deterministic"
            )


@dataclass(frozen=True)
class ConversionResult:
    """audio: (N,) float32 in [-1, 1] (int16-exact: k / 32768) at ``sample_rate``; seconds per stage."""

    audio: np.ndarray
    sample_rate: int
    timings: dict[str, float] = field(default_factory=dict)

    def to_int16(self) -> np.ndarray:
        """The reference's int16 output, exactly."""
        return np.round(self.audio * 32768.0).astype(np.int16)


@dataclass(frozen=True)
class VoiceInfo:
    """A resident voice as a worker loaded it: what the pool reports and the status pages show."""

    name: str
    version: str
    if_f0: bool
    sample_rate: int
    has_index: bool
    n_speakers: int = 1
    path: str = ""

    def to_dict(self) -> dict[str, str | int | bool]:
        """Plain data for JSON (the daemon's replies, ``RVCServer.load_voice``)."""
        return {
            "name": self.name,
            "version": self.version,
            "if_f0": self.if_f0,
            "sample_rate": self.sample_rate,
            "has_index": self.has_index,
            "n_speakers": self.n_speakers,
            "path": self.path,
        }
