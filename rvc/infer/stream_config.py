"""The geometry of a streamed conversion: block, left context, crossfade, SOLA search, f0 margin.

Torch-free, so service settings and the gateway can build and validate one without the model
stack. Every length is a whole number of 10 ms frames (RVC's f0 and synthesizer frame), given
in seconds as in RVC's realtime GUI. One streamed step takes ``block`` new seconds of 16 kHz
input, runs HuBERT over ``context + crossfade + search + block`` seconds, estimates f0 over
the block plus ``f0_margin`` and decodes only the last ``crossfade + search + block``.

Latency to first audio is one block plus one step's compute; the output lags the input by
``crossfade + search`` inside each step and the stream hides that by dropping the lag once at
the start (see ``StreamConverter``).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FRAME_SECONDS", "StreamConfig"]

FRAME_SECONDS = 0.01
_TOLERANCE = 1e-6


def _frames(name: str, seconds: float, minimum: int) -> int:
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise ValueError(f"StreamConfig.{name} must be a number of seconds, got {seconds!r}")
    frames = round(seconds / FRAME_SECONDS)
    if abs(frames * FRAME_SECONDS - seconds) > _TOLERANCE:
        raise ValueError(f"StreamConfig.{name} must be a multiple of 0.01 s, got {seconds!r}")
    if frames < minimum:
        raise ValueError(
            f"StreamConfig.{name} must be at least {minimum * FRAME_SECONDS:g} s, got {seconds!r}"
        )
    return frames


@dataclass(frozen=True)
class StreamConfig:
    """Seconds, each a multiple of 0.01. Defaults measured on TTS-like input (README / report).

    block: new input per step (latency floor, and the compute granularity);
    context: left context HuBERT and the synthesizer's encoder see (quality vs cost per step);
    crossfade: sine-squared overlap between steps; search: SOLA's alignment window;
    f0_margin: audio before the block the f0 estimator sees (its first frames are discarded);
    envelope: trailing window of the rms-mix loudness (offline's frame is 1 s), capped at the buffer.
    """

    block: float = 0.25
    context: float = 1.0
    crossfade: float = 0.05
    search: float = 0.01
    f0_margin: float = 0.05
    envelope: float = 1.0

    def __post_init__(self) -> None:
        block = _frames("block", self.block, 2)
        _frames("context", self.context, 50)
        crossfade = _frames("crossfade", self.crossfade, 1)
        _frames("search", self.search, 0)
        _frames("f0_margin", self.f0_margin, 4)
        _frames("envelope", self.envelope, 1)
        if crossfade > block:
            raise ValueError(
                f"StreamConfig.crossfade ({self.crossfade} s) must not exceed block ({self.block} s)"
            )
        if self.f0_margin > self.context:
            raise ValueError(
                f"StreamConfig.f0_margin ({self.f0_margin} s) must not exceed context ({self.context} s)"
            )

    @property
    def block_frames(self) -> int:
        return round(self.block / FRAME_SECONDS)

    @property
    def context_frames(self) -> int:
        return round(self.context / FRAME_SECONDS)

    @property
    def crossfade_frames(self) -> int:
        return round(self.crossfade / FRAME_SECONDS)

    @property
    def search_frames(self) -> int:
        return round(self.search / FRAME_SECONDS)

    @property
    def f0_margin_frames(self) -> int:
        return round(self.f0_margin / FRAME_SECONDS)

    @property
    def envelope_frames(self) -> int:
        return round(self.envelope / FRAME_SECONDS)

    @property
    def buffer_frames(self) -> int:
        """Frames HuBERT sees per step: context + crossfade + search + block."""
        return self.context_frames + self.crossfade_frames + self.search_frames + self.block_frames

    @property
    def lag_frames(self) -> int:
        """How far each step's decoded head reaches back before its block: crossfade + search."""
        return self.crossfade_frames + self.search_frames
