"""Streamed RVC conversion: 16 kHz audio in as it arrives, the voice's audio out block by block.

The steps follow RVC's realtime path (``rtrvc.py`` + the realtime GUI's audio callback): a 16 kHz
buffer slides by one step's new input; HuBERT runs over the step's window (left context + crossfade
+ search + the new input); f0 runs only over the new block plus a margin and is written into a
pitch cache that slides with the buffer (already shifted, so old frames are never re-estimated);
the synthesizer decodes only the tail (``skip_head`` / ``return_length``); the volume envelope
is mixed as offline; SOLA aligns the tail to the previous step and crossfades it (``sola.py``).

Where it differs from offline, on purpose: the high-pass is causal (its state carried between
steps) instead of zero-phase; the envelope mix measures both RMS over a trailing window instead
of centred 1 s frames (a stream cannot look 0.5 s ahead; the realtime GUI's 40 ms frames follow
the input's envelope far more closely than offline does, so they were measured and dropped); the
peak limit and int16 rescaling need the whole signal and are left out (the output is clipped to
[-1, 1]); the index blend covers the whole buffer.

Determinism: input is cut into steps by ``config``'s schedule (``step_frames``: ``block``, doubling
up to ``steady_block``), whatever the sizes ``feed`` is called with, so the same audio gives the
same output however it is split; with
``params.deterministic`` no noise is drawn, with ``params.seed`` the draws come from one generator
seeded when the stream opens.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import torch
from scipy import signal

from rvc.errors import InvalidInput
from rvc.infer.converter import VoiceConverter
from rvc.infer.f0 import coarse_pitch, estimate_f0, pitch_inputs
from rvc.infer.fcpe import FCPE
from rvc.infer.hubert import ContentEncoder
from rvc.infer.index import FeatureIndex
from rvc.infer.params import ConversionParams
from rvc.infer.pitch_fill import fill_unvoiced
from rvc.infer.profiles import InferenceProfile, profile_named
from rvc.infer.rmvpe import RMVPE
from rvc.infer.sola import SolaJoiner
from rvc.infer.stream_config import StreamConfig
from rvc.infer.synthesizer import Synthesizer

__all__ = ["StreamConfig", "StreamConverter", "StreamModels", "open_stream"]

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
HOP_LENGTH = 160
# the f0 estimate's first frames see no left context and its last one runs off the end
_F0_HEAD_DROP = 3
_F0_TAIL_DROP = 1
_LOUDNESS_FLOOR = 1e-6  # offline's clamp of the output RMS
_HIGH_PASS_ORDER = 5
_HIGH_PASS_HZ = 48


@dataclass(frozen=True)
class StreamModels:
    """The models one stream reads (shared, never written): one voice plus the shared encoders."""

    hubert: ContentEncoder
    synthesizer: Synthesizer
    version: str
    if_f0: bool
    sample_rate: int
    index: FeatureIndex | None
    rmvpe: RMVPE | None
    device: torch.device
    crepe_model: str = "full"
    fcpe: FCPE | None = None


def open_stream(
    converter: VoiceConverter, voice: str, params: ConversionParams, config: StreamConfig | None = None
) -> StreamConverter:
    """A stream on a resident voice of ``converter`` (InvalidInput / NotFound as ``convert`` raises them)."""
    params.validate()
    resident = converter.resident_for(voice, params)
    checkpoint = resident.checkpoint
    fcpe = converter.fcpe() if checkpoint.if_f0 and params.f0_method == "fcpe" else None
    models = StreamModels(
        hubert=converter.hubert, synthesizer=checkpoint.model, version=checkpoint.version,
        if_f0=checkpoint.if_f0, sample_rate=checkpoint.sample_rate, index=resident.index,
        rmvpe=converter.rmvpe, device=converter.device, crepe_model=converter.crepe_model, fcpe=fcpe,
    )  # fmt: skip
    return StreamConverter(models, params, config or StreamConfig(), profile=converter.profile_for(params))


class StreamConverter:
    """One conversion stream: ``feed`` 16 kHz audio as it comes, ``flush`` once at the end.

    Owned by one caller (not thread-safe); the models are only read, so any number of streams
    and offline conversions can share them. Memory held between calls is bounded and does not
    grow with the stream: the 16 kHz buffer (``config.buffer_frames`` x 160 float32), a pitch
    cache of as many frames, under one step of pending input, one crossfade tail and
    ``config.envelope`` seconds of raw output at the voice's rate; with the defaults at 40 kHz
    about 270 kB. A step's activations are freed when it ends.
    """

    def __init__(
        self, models: StreamModels, params: ConversionParams, config: StreamConfig,
        *, profile: InferenceProfile | None = None,
    ) -> None:  # fmt: skip
        params.validate()
        self.profile = profile or profile_named(params.rvc_profile)
        if params.resample_sr not in (0, models.sample_rate):
            raise InvalidInput(
                f"a stream returns the voice's rate ({models.sample_rate} Hz); resample_sr must be 0, "
                f"got {params.resample_sr}",
                field="resample_sr",
            )
        if models.if_f0 and params.f0_method == "rmvpe" and models.rmvpe is None:
            raise InvalidInput(
                "f0_method 'rmvpe' is unavailable: no rmvpe.pt was configured", field="f0_method"
            )
        if models.if_f0 and params.f0_method == "fcpe" and models.fcpe is None:
            raise InvalidInput("f0_method 'fcpe' is unavailable: no FCPE model was given", field="f0_method")
        self.models = models
        self.params = params
        self.config = config
        self.sample_rate = models.sample_rate
        self.frame_out = models.sample_rate // 100  # output samples per 10 ms frame
        frames = config.buffer_frames
        self._buffer = np.zeros(frames * HOP_LENGTH, dtype=np.float32)
        self._pitch = np.ones(frames, dtype=np.int64)  # coarse bin 1 = unvoiced
        self._pitchf = np.zeros(frames, dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)
        self._high_pass = signal.butter(
            _HIGH_PASS_ORDER, _HIGH_PASS_HZ, btype="high", fs=SAMPLE_RATE, output="sos"
        )
        self._high_pass_state = np.zeros((self._high_pass.shape[0], 2))
        self._joiner = SolaJoiner(
            config.crossfade_frames * self.frame_out, config.search_frames * self.frame_out
        )
        self._to_drop = config.lag_frames * self.frame_out  # the lag before the first input sample
        self._received = 0
        self._emitted = 0
        self._finished = False
        self._generator = None
        if params.seed is not None:
            self._generator = torch.Generator(device=models.device).manual_seed(params.seed)
        self._sid = torch.tensor([params.speaker_id], device=models.device, dtype=torch.long)
        self._envelope_frames = min(config.envelope_frames, config.buffer_frames)
        self._raw_out = np.zeros(self._envelope_frames * self.frame_out, dtype=np.float32)
        self._gain: float | None = None
        self.steps = 0
        self.timings: dict[str, float] = {}

    # -- public API ---------------------------------------------------------------------------

    @property
    def block_samples(self) -> int:
        """16 kHz input samples of the first step (the least input that gives output)."""
        return self.config.block_frames * HOP_LENGTH

    @property
    def next_step_samples(self) -> int:
        """16 kHz input samples the next step takes (the schedule of ``config.step_frames``)."""
        return self.config.step_frames(self.steps) * HOP_LENGTH

    @property
    def finished(self) -> bool:
        return self._finished

    def feed(self, audio16k: np.ndarray) -> np.ndarray:
        """(N,) float audio at 16 kHz, any N >= 0 -> the voice's audio ready so far, (M,) float32 in [-1, 1].

        M is the output of the steps this feed completed (each step's new input x the voice's
        rate) minus, on the first output, the ``crossfade + search`` lag; often 0 while a step
        fills. One call runs every step it completes, so a caller that feeds at most
        ``next_step_samples`` at a time never holds the models for longer than one step.
        """
        if self._finished:
            raise InvalidInput(
                "this stream was flushed or failed; open a new one to convert more audio", field="audio"
            )
        wav = np.asarray(audio16k, dtype=np.float32)
        if wav.ndim != 1:
            raise InvalidInput(
                f"stream audio must be mono (N,) samples, got shape {wav.shape}", field="audio"
            )
        if not np.all(np.isfinite(wav)):
            raise InvalidInput("stream audio contains NaN or infinite samples", field="audio")
        if wav.shape[0] == 0:  # scipy's sosfilt refuses an empty signal; nothing changes anyway
            return np.zeros(0, dtype=np.float32)
        self._received += wav.shape[0]
        filtered, self._high_pass_state = signal.sosfilt(self._high_pass, wav, zi=self._high_pass_state)
        self._pending = np.concatenate([self._pending, filtered.astype(np.float32)])
        pieces = []
        while self._pending.shape[0] >= (size := self.next_step_samples):
            new, self._pending = self._pending[:size], self._pending[size:]
            pieces.append(self._guarded_step(new))
        return self._emit(pieces)

    def flush(self) -> np.ndarray:
        """End of stream: the rest of the output, (M,) float32. Closes the stream.

        After it, the stream has returned exactly ``floor(N · sample_rate / 16000)`` samples in
        all, N being every input sample fed: the pending input is padded with silence just far
        enough to push its last sample through the lag, in steps no longer than the schedule's next.
        """
        if self._finished:
            return np.zeros(0, dtype=np.float32)
        self._finished = True
        target = self._received * self.sample_rate // SAMPLE_RATE
        pieces = []
        owed = target - self._emitted  # output samples still to decode, past the lag
        if owed > 0:
            owed += self._to_drop
        while owed > 0:
            frames = min(self.config.step_frames(self.steps), -(-owed // self.frame_out))
            wanted = frames * HOP_LENGTH
            new = np.zeros(wanted, dtype=np.float32)
            take = min(wanted, self._pending.shape[0])
            new[:take] = self._pending[:take]
            self._pending = self._pending[take:]
            pieces.append(self._guarded_step(new))
            owed -= frames * self.frame_out
        out = self._emit(pieces)
        out = out[: max(target - (self._emitted - out.shape[0]), 0)]
        self._emitted = target
        return out

    # -- one step -------------------------------------------------------------------------------

    def _emit(self, pieces: list[np.ndarray]) -> np.ndarray:
        out = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)
        if self._to_drop:
            dropped = min(self._to_drop, out.shape[0])
            out = out[dropped:]
            self._to_drop -= dropped
        self._emitted += out.shape[0]
        return np.clip(out, -1.0, 1.0)

    def _guarded_step(self, new16k: np.ndarray) -> np.ndarray:
        """A step that fails (or is interrupted) leaves the state half-slid: the stream is over then."""
        try:
            return self._step(new16k)
        except BaseException:
            self._finished = True
            raise

    def _timed(self, stage: str, started: float) -> float:
        now = time.perf_counter()
        self.timings[stage] = self.timings.get(stage, 0.0) + now - started
        return now

    @torch.inference_mode()
    def _step(self, new16k: np.ndarray) -> np.ndarray:
        """Slide the buffer by ``new16k`` ((n·160,) float32) and return n frames of joined output."""
        started = time.perf_counter()
        new_frames = new16k.shape[0] // HOP_LENGTH
        total = self.config.window_frames(new_frames)
        decoded_frames = new_frames + self.config.lag_frames
        skip_head = total - decoded_frames
        self._buffer = np.concatenate([self._buffer[new16k.shape[0] :], new16k])
        models, params = self.models, self.params

        if models.if_f0:
            self._update_pitch(new_frames)
            started = self._timed("f0", started)
        feats = self._content(total)
        started = self._timed("hubert", started)
        device = models.device
        pitch = pitchf = None
        if models.if_f0:
            coarse, shifted = self._pitch_for_synthesis(total)
            pitch = torch.from_numpy(coarse).unsqueeze(0).to(device)
            pitchf = torch.from_numpy(shifted).unsqueeze(0).to(device)
        lengths = torch.tensor([total], device=device, dtype=torch.long)
        audio = models.synthesizer.infer(
            feats, lengths, pitch, pitchf, self._sid, generator=self._generator,
            deterministic=params.deterministic, sine_phase=self.profile.sine_phase, skip_head=skip_head,
            return_length=decoded_frames,
        )[0, 0].float().cpu().numpy()  # fmt: skip
        started = self._timed("synthesizer", started)
        if params.rms_mix_rate != 1:
            audio = self._mix_loudness(audio, new_frames)
        joined = self._joiner.join(audio)
        self._timed("join", started)
        self.steps += 1
        return joined

    def _content(self, total: int) -> torch.Tensor:
        """HuBERT over the buffer's last ``total`` frames, index-blended, protect-mixed: (1, total, C), 10 ms frames."""
        models, params = self.models, self.params
        source = torch.from_numpy(self._buffer[-total * HOP_LENGTH :]).view(1, -1).to(models.device)
        feats = models.hubert.extract(source, models.version).float()  # (1, T_h, C), 20 ms frames
        short = -(-total // 2) - feats.shape[1]
        if short > 0:  # the last 20 ms frame needs 400 samples: repeat it, as the realtime path
            feats = torch.cat([feats, feats[:, -1:].expand(-1, short, -1)], dim=1)
        use_protect = models.if_f0 and params.protect < 0.5
        raw = feats.clone() if use_protect else None
        if models.index is not None and params.index_rate != 0:
            feats = models.index.blend(feats, params.index_rate)
        feats = feats.repeat_interleave(2, dim=1)[:, :total]
        if raw is not None:
            raw = raw.repeat_interleave(2, dim=1)[:, :total]
            # unvoiced frames keep mostly the raw features, as offline
            mask = torch.from_numpy(np.where(self._pitch_for_synthesis(total)[1] > 0, 1.0, params.protect))
            mask = mask.to(device=feats.device, dtype=feats.dtype)[None, :, None]
            feats = feats * mask + raw * (1 - mask)
        return feats

    def _pitch_for_synthesis(self, total: int) -> tuple[np.ndarray, np.ndarray]:
        """(coarse int64, f0 float32) of the last ``total`` frames: the cache as estimated, or filled (``2026``).

        The cache itself keeps the estimate unfilled, so a gap is interpolated again once its right
        neighbour arrives (until then its frames hold the last voiced value, as an edge offline).
        """
        if not self.profile.fill_unvoiced:
            return self._pitch[-total:], self._pitchf[-total:]
        filled = fill_unvoiced(self._pitchf)[-total:]  # over the whole cache: the step's window may start in a gap
        return coarse_pitch(filled).astype(np.int64), filled

    def _update_pitch(self, new_frames: int) -> None:
        """Slide the pitch cache by the new frames and write the fresh estimate over its end."""
        params, models = self.params, self.models
        window = new_frames * HOP_LENGTH + self.config.f0_margin_frames * HOP_LENGTH
        if params.f0_method == "rmvpe" and models.rmvpe is not None:
            # whole U-Net time blocks, minus one hop (the estimate has 1 + N // 160 frames)
            multiple = models.rmvpe.model.config.time_multiple * HOP_LENGTH
            window = multiple * -(-(window + HOP_LENGTH) // multiple) - HOP_LENGTH
        window = min(window, self._buffer.shape[0])
        frames = window // HOP_LENGTH + 1
        f0 = estimate_f0(
            params.f0_method, self._buffer[-window:].astype(np.float64), frames, filter_radius=params.filter_radius,
            rmvpe=models.rmvpe, fcpe=models.fcpe, crepe_model=models.crepe_model, device=str(models.device),
            seed=_f0_seed(params),
        )  # fmt: skip
        coarse, shifted = pitch_inputs(f0, pitch_shift=params.pitch_shift)
        fresh = slice(_F0_HEAD_DROP, frames - _F0_TAIL_DROP)
        self._pitch = np.roll(self._pitch, -new_frames)
        self._pitchf = np.roll(self._pitchf, -new_frames)
        count = fresh.stop - fresh.start
        self._pitch[-count:] = coarse[fresh]
        self._pitchf[-count:] = shifted[fresh]

    def _mix_loudness(self, audio: np.ndarray, new_frames: int) -> np.ndarray:
        """Offline's gain rms_in^(1-rate)·rms_out^(rate-1), RMS over the trailing ``config.envelope`` seconds.

        Offline measures both RMS over 1 s frames centred every 0.5 s; a stream cannot look ahead,
        so both are taken over the same trailing window ending at this step's last sample (the
        output side on the decoder's raw output, before any gain). The gain ramps linearly from the
        previous step's value over the new block and holds for the lag that the next step's
        head overlaps, so neighbouring steps agree where they are crossfaded.
        """
        rate = self.params.rms_mix_rate
        zc = self.frame_out
        lag = self.config.lag_frames * zc
        self._raw_out = np.concatenate([self._raw_out, audio[lag:]])[-self._raw_out.shape[0] :]
        window_in = self._buffer[-self._envelope_frames * HOP_LENGTH :].astype(np.float64)
        rms_in = float(np.sqrt(np.mean(np.square(window_in))))
        rms_out = max(float(np.sqrt(np.mean(np.square(self._raw_out, dtype=np.float64)))), _LOUDNESS_FLOOR)
        gain = rms_in ** (1 - rate) * rms_out ** (rate - 1)
        previous = gain if self._gain is None else self._gain
        self._gain = gain
        ramp = np.full(audio.shape[0], gain, dtype=np.float64)
        ramp[: new_frames * zc] = np.linspace(previous, gain, num=new_frames * zc, endpoint=False)
        return (audio * ramp).astype(np.float32)


def _f0_seed(params: ConversionParams) -> int | None:
    """crepe dithers at random; a seeded or deterministic stream gets a repeatable draw (as offline)."""
    if params.seed is not None:
        return params.seed
    return 0 if params.deterministic else None
