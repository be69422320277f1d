"""RVC's offline conversion, step by step: 16 kHz input -> voice audio at the model's rate.

The steps and their order follow the reference ``Pipeline.pipeline`` / ``Pipeline.vc``
(docs/rvc_reference.md): high-pass, split long inputs at quiet points, reflect-pad
each side by ``x_pad`` seconds, f0 once on the whole padded signal, then per segment
HuBERT features -> index blend -> x2 upsampling -> protect mix -> synthesizer, trim the
padding, volume-envelope mix, optional resample. The models are passed in; nothing here
holds state, so one set of models serves any number of calls. The inference profile
(``profiles.py``) decides whether unvoiced pitch is filled and which NSF phase form runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from rvc.infer.f0 import estimate_f0, pitch_inputs
from rvc.infer.params import ConversionParams
from rvc.infer.profiles import InferenceProfile, profile_named
from rvc.infer.signal_ops import high_pass, mix_rms, resample_output, split_points

if TYPE_CHECKING:
    from rvc.infer.fcpe import FCPE
    from rvc.infer.hubert import ContentEncoder
    from rvc.infer.index import FeatureIndex
    from rvc.infer.rmvpe import RMVPE
    from rvc.infer.synthesizer import Synthesizer

__all__ = ["CPU_SEGMENTS", "HALF_PRECISION_SEGMENTS", "SegmentConfig", "Trace", "run_pipeline"]

SAMPLE_RATE = 16000
HOP_LENGTH = 160

# Per-segment intermediates by name, appended once per segment (tests, diagnostics).
Trace = dict[str, list[np.ndarray]]


@dataclass(frozen=True)
class SegmentConfig:
    """Padding and split lengths in seconds (the reference's device config: x_pad, x_query, x_center, x_max)."""

    x_pad: int = 1
    x_query: int = 6
    x_center: int = 38
    x_max: int = 41

    def __post_init__(self) -> None:
        for name in ("x_pad", "x_query", "x_center", "x_max"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"SegmentConfig.{name} must be a positive int (seconds), got {value!r}")
        if not self.x_query < self.x_center <= self.x_max:
            raise ValueError(
                f"SegmentConfig needs x_query < x_center <= x_max, got {self.x_query}, {self.x_center}, {self.x_max}"
            )

    @property
    def t_pad(self) -> int:
        return SAMPLE_RATE * self.x_pad


CPU_SEGMENTS = SegmentConfig()  # the reference's CPU / fp32 setting
HALF_PRECISION_SEGMENTS = SegmentConfig(3, 10, 60, 65)  # the reference's fp16 GPU setting


@contextmanager
def _timed(timings: dict[str, float], stage: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - start


def _record(trace: Trace | None, **arrays: np.ndarray | torch.Tensor) -> None:
    if trace is None:
        return
    for name, value in arrays.items():
        array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
        trace.setdefault(name, []).append(array.copy())


def _f0_seed(params: ConversionParams) -> int | None:
    """crepe dithers at random; a seeded or deterministic request gets a repeatable draw."""
    if params.seed is not None:
        return params.seed
    return 0 if params.deterministic else None


@dataclass(frozen=True)
class SegmentModels:
    """What one segment's conversion needs besides its audio and pitch."""

    hubert: ContentEncoder
    synthesizer: Synthesizer
    version: str
    index: FeatureIndex | None
    device: torch.device


def convert_segment(
    segment: np.ndarray,
    pitch: np.ndarray | None,
    pitchf: np.ndarray | None,
    models: SegmentModels,
    params: ConversionParams,
    *,
    synthesize: Callable[..., torch.Tensor],
    timings: dict[str, float],
    trace: Trace | None = None,
) -> np.ndarray:
    """One padded segment ((L,) float64 at 16 kHz) -> voice audio ((2*T_h*hop,) float32, untrimmed).

    ``pitch``/``pitchf`` are the segment's coarse bins and Hz (None for a no-f0 voice).
    """
    device = models.device
    with _timed(timings, "hubert"):
        source = torch.from_numpy(segment).float().view(1, -1).to(device)
        feats = models.hubert.extract(source, models.version).float()  # (1, T_h, C)
    use_protect = params.protect < 0.5 and pitch is not None
    raw_feats = feats.clone() if use_protect else None
    _record(trace, segment_len=np.array([segment.shape[0]]), hubert_feats=feats[0])
    if models.index is not None and params.index_rate != 0:
        with _timed(timings, "index"):
            feats = models.index.blend(feats, params.index_rate, trace=trace)
    _record(trace, feats_blended=feats[0])
    feats = feats.repeat_interleave(2, dim=1)  # 20 ms HuBERT frames -> 10 ms synthesizer frames
    p_len = min(segment.shape[0] // HOP_LENGTH, feats.shape[1])
    feats = feats[:, :p_len]
    pitch_t = pitchf_t = None
    if pitch is not None and pitchf is not None:
        pitch_t = torch.from_numpy(np.asarray(pitch[:p_len], dtype=np.int64)).unsqueeze(0).to(device)
        pitchf_t = torch.from_numpy(np.asarray(pitchf[:p_len])).float().unsqueeze(0).to(device)
    if use_protect and pitchf_t is not None and raw_feats is not None:
        raw_feats = raw_feats.repeat_interleave(2, dim=1)[:, :p_len]
        # unvoiced frames keep mostly the raw features (consonants and breaths stay intelligible)
        mask = pitchf_t.clone()
        mask[pitchf_t > 0] = 1
        mask[pitchf_t < 1] = params.protect
        mask = mask.unsqueeze(-1)
        feats = feats * mask + raw_feats * (1 - mask)
        _record(trace, protect_mask=mask[0, :, 0])
    lengths = torch.tensor([p_len], device=device, dtype=torch.long)
    _record(trace, infer_feats=feats[0], infer_p_len=lengths)
    if pitch_t is not None and pitchf_t is not None:
        _record(trace, infer_pitch=pitch_t[0], infer_pitchf=pitchf_t[0])
    with _timed(timings, "synthesizer"):
        audio = synthesize(feats, lengths, pitch_t, pitchf_t)[0, 0].float().cpu().numpy()
    _record(trace, synth_audio=audio)
    return audio


def run_pipeline(
    audio16k: np.ndarray,
    models: SegmentModels,
    params: ConversionParams,
    *,
    if_f0: bool,
    sample_rate: int,
    rmvpe: RMVPE | None,
    fcpe: FCPE | None = None,
    crepe_model: str = "full",
    segments: SegmentConfig = CPU_SEGMENTS,
    profile: InferenceProfile | None = None,
    timings: dict[str, float] | None = None,
    trace: Trace | None = None,
) -> tuple[np.ndarray, int]:
    """Peak-limited (N,) float32 16 kHz input -> (float32 audio in [-1, 1] before int16, output rate).

    Output length, unsplit: 2*T_h*hop - 2*x_pad*sample_rate with T_h = (N + 2*t_pad - 400)//320 + 1,
    about 20 ms shorter than the input (the shortfall is at the end).
    """
    timings = {} if timings is None else timings
    profile = profile or profile_named(params.rvc_profile)
    generator = None
    if params.seed is not None:
        generator = torch.Generator(device=models.device).manual_seed(params.seed)
    sid = torch.tensor([params.speaker_id], device=models.device, dtype=torch.long)

    def synthesize(
        feats: torch.Tensor, lengths: torch.Tensor, pitch: torch.Tensor | None, pitchf: torch.Tensor | None
    ) -> torch.Tensor:
        return models.synthesizer.infer(
            feats, lengths, pitch, pitchf, sid, generator=generator, deterministic=params.deterministic,
            sine_phase=profile.sine_phase,
        )

    with _timed(timings, "preprocess"):
        audio = high_pass(audio16k)
        cuts = split_points(
            audio,
            center=SAMPLE_RATE * segments.x_center,
            query=SAMPLE_RATE * segments.x_query,
            max_length=SAMPLE_RATE * segments.x_max,
        )
        t_pad = segments.t_pad
        audio_pad = np.pad(audio, (t_pad, t_pad), mode="reflect")
        p_len = audio_pad.shape[0] // HOP_LENGTH
    _record(trace, hp_audio_16k=audio)
    pitch = pitchf = None
    if if_f0:
        with _timed(timings, "f0"):
            f0 = estimate_f0(
                params.f0_method, audio_pad, p_len, filter_radius=params.filter_radius, rmvpe=rmvpe, fcpe=fcpe,
                crepe_model=crepe_model, device=str(models.device), seed=_f0_seed(params),
            )  # fmt: skip
            pitch, pitchf = pitch_inputs(f0, pitch_shift=params.pitch_shift, fill=profile.fill_unvoiced)
        _record(trace, pitch_full=pitch, pitchf_full=pitchf)
        pitch, pitchf = pitch[:p_len], pitchf[:p_len]

    trim = segments.x_pad * sample_rate
    pieces = []
    start = 0
    bounds = [(cut, cut + 2 * t_pad + HOP_LENGTH) for cut in cuts]
    for cut, end in [*bounds, (None, None)]:
        # each segment carries t_pad of context on both sides; its output loses it again
        stop_frame = None if cut is None else (cut + 2 * t_pad) // HOP_LENGTH
        segment = audio_pad[start:end]
        frames = slice(start // HOP_LENGTH, stop_frame)
        seg_pitch = None if pitch is None else pitch[frames]
        seg_pitchf = None if pitchf is None else pitchf[frames]
        out = convert_segment(
            segment,
            seg_pitch,
            seg_pitchf,
            models,
            params,
            synthesize=synthesize,
            timings=timings,
            trace=trace,
        )
        pieces.append(out[trim:-trim])
        if cut is not None:
            start = cut
    audio_out = np.concatenate(pieces)
    _record(trace, audio_before_rms=audio_out)

    with _timed(timings, "postprocess"):
        if params.rms_mix_rate != 1:
            audio_out = mix_rms(audio, audio_out, sample_rate, params.rms_mix_rate)
        _record(trace, audio_after_rms=audio_out)
        out_rate = sample_rate
        if params.resample_sr and params.resample_sr != sample_rate:
            audio_out = resample_output(audio_out, sample_rate, params.resample_sr)
            out_rate = params.resample_sr
    return audio_out, out_rate
