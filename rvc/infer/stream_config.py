"""The geometry of a streamed conversion: block, left context, crossfade, SOLA search, f0 margin.

Torch-free, so service settings and the gateway can build and validate one without the model
stack. Every length is a whole number of 10 ms frames (RVC's f0 and synthesizer frame), given
in seconds as in RVC's realtime GUI. One streamed step takes ``n`` new seconds of 16 kHz
input, runs HuBERT over ``context + crossfade + search + n`` seconds, estimates f0 over the
step plus ``f0_margin`` and decodes only the last ``crossfade + search + n``.

The step size follows a schedule fixed by the position in the input, not by how the input
arrives: the first step is ``block`` (the latency floor), each next one doubles, up to
``steady_block``. A microphone needs every step small; speech from a TTS arrives in chunks
ahead of real time, and once the first sound is out every step's fixed cost (HuBERT over the
whole context, one round trip to the worker, the f0 margin, the join) is paid per step, not
per second: measured on the demo stack, 0.25 s steps throughout cost 1.6x the whole-sentence
time, and the doubling keeps first audio where it was. A fixed schedule keeps a stream's
output independent of how its input was split.

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


class _InFrames:
    """``StreamConfig.<length>_frames``: that length in whole 10 ms frames (``__post_init__`` has
    checked it is a multiple of 0.01 s), so each conversion is written once."""

    def __set_name__(self, owner: type, name: str) -> None:
        self._length = name.removesuffix("_frames")

    def __get__(self, config: object, owner: type | None = None) -> int:
        return round(getattr(config, self._length) / FRAME_SECONDS)


@dataclass(frozen=True)
class StreamConfig:
    """Seconds, each a multiple of 0.01. Defaults measured on TTS-like input (README / report).

    block: new input of the first step (the latency floor);
    steady_block: the largest step, reached by doubling from ``block`` (the compute granularity later on);
    context: left context HuBERT and the synthesizer's encoder see (quality vs cost per step);
    crossfade: sine-squared overlap between steps; search: SOLA's alignment window;
    f0_margin: audio before the block the f0 estimator sees (its first frames are discarded);
    envelope: trailing window of the rms-mix loudness (offline's frame is 1 s), capped at the buffer.
    """

    block: float = 0.25
    steady_block: float = 1.0  # with context 0.5: stream compute = offline's (0.5 / 1.0: 1.32x), SNR no lower
    context: float = 0.5
    crossfade: float = 0.05
    search: float = 0.01
    f0_margin: float = 0.05
    envelope: float = 1.0

    def __post_init__(self) -> None:
        block = _frames("block", self.block, 2)
        steady = _frames("steady_block", self.steady_block, 2)
        _frames("context", self.context, 50)
        crossfade = _frames("crossfade", self.crossfade, 1)
        _frames("search", self.search, 0)
        _frames("f0_margin", self.f0_margin, 4)
        _frames("envelope", self.envelope, 1)
        if crossfade > block:
            raise ValueError(
                f"StreamConfig.crossfade ({self.crossfade} s) must not exceed block ({self.block} s)"
            )
        if steady < block:
            raise ValueError(
                f"StreamConfig.steady_block ({self.steady_block} s) must not be shorter than block ({self.block} s)"
            )
        if self.f0_margin > self.context:
            raise ValueError(
                f"StreamConfig.f0_margin ({self.f0_margin} s) must not exceed context ({self.context} s)"
            )

    block_frames = _InFrames()
    steady_block_frames = _InFrames()
    context_frames = _InFrames()
    crossfade_frames = _InFrames()
    search_frames = _InFrames()
    f0_margin_frames = _InFrames()
    envelope_frames = _InFrames()

    def step_frames(self, step: int) -> int:
        """New input frames of step ``step`` (0-based): ``block`` doubled ``step`` times, capped at ``steady_block``."""
        if step < 0:
            raise ValueError(f"a step number is >= 0, got {step}")
        block, steady = self.block_frames, self.steady_block_frames
        return steady if step >= max(steady.bit_length(), 1) else min(block << step, steady)

    def step_sizes(self, frames: int) -> list[int]:
        """The schedule's step sizes (frames) of the whole steps within the first ``frames`` of input."""
        sizes: list[int] = []
        while sum(sizes) + (size := self.step_frames(len(sizes))) <= frames:
            sizes.append(size)
        return sizes

    @property
    def buffer_frames(self) -> int:
        """Frames the stream keeps: context + crossfade + search + the largest step (``steady_block``)."""
        return self.window_frames(self.steady_block_frames)

    def window_frames(self, new_frames: int) -> int:
        """Frames HuBERT sees in a step of ``new_frames``: context + crossfade + search + new_frames."""
        return self.context_frames + self.crossfade_frames + self.search_frames + new_frames

    @property
    def lag_frames(self) -> int:
        """How far each step's decoded head reaches back before its block: crossfade + search."""
        return self.crossfade_frames + self.search_frames
