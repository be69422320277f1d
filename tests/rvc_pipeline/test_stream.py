"""Streamed conversion on the demo voice: geometry, split invariance, flush length, SOLA, joins, parity."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from rvc.errors import InvalidInput
from rvc.infer.converter import ConversionParams
from rvc.infer.sola import SolaJoiner, fade_in_window, sola_offset
from rvc.infer.stream import StreamConfig, StreamConverter, open_stream
from rvc.infer.synthesizer import Synthesizer, save_voice_checkpoint
from rvc.infer.synthesizer_config import official_config

from .conftest import SAMPLE_RATE, harmonic_tone

DETERMINISTIC = ConversionParams(deterministic=True)
# 1.3 s: whole steps of 0.25, 0.5 and 0.5 s (the default schedule) and a partial one, so flush has
# pending input to push out
SPEECH_LIKE = harmonic_tone(np.linspace(120.0, 220.0, int(1.3 * SAMPLE_RATE)), 1.3)


def _stream_all(stream: StreamConverter, audio: np.ndarray, sizes: list[int]) -> list[np.ndarray]:
    pieces = []
    start = 0
    position = 0
    while start < audio.shape[0]:
        size = sizes[position % len(sizes)]
        pieces.append(stream.feed(audio[start : start + size]))
        start += size
        position += 1
    pieces.append(stream.flush())
    return pieces


def _snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    length = min(reference.shape[0], estimate.shape[0])
    reference, estimate = reference[:length], estimate[:length]
    return float(10 * np.log10(np.sum(reference**2) / np.sum((reference - estimate) ** 2)))


@pytest.fixture(scope="module")
def whole_stream(demo_converter) -> np.ndarray:
    stream = open_stream(demo_converter, "demo", DETERMINISTIC)
    return np.concatenate([stream.feed(SPEECH_LIKE), stream.flush()])


def test_stream_output_is_finite_float32_at_the_voice_rate(demo_converter) -> None:
    stream = open_stream(demo_converter, "demo", DETERMINISTIC)
    assert stream.sample_rate == demo_converter.voices["demo"].sample_rate == 40000
    block = stream.block_samples
    first = stream.feed(SPEECH_LIKE[:block])
    # one block's output (0.25 s at 40 kHz) less the crossfade + search lag dropped once at the start
    assert first.shape == (10000 - 2400,)
    assert stream.next_step_samples == 8000  # the schedule doubles the block to the steady 0.5 s
    assert stream.feed(SPEECH_LIKE[block : 2 * block]).shape == (0,)  # the second step is still filling
    second = stream.feed(SPEECH_LIKE[2 * block : 3 * block])
    assert second.shape == (20000,)
    assert stream.feed(SPEECH_LIKE[:100]).shape == (0,)
    for out in (first, second):
        assert out.dtype == np.float32
        assert np.all(np.isfinite(out)) and np.abs(out).max() <= 1.0
        assert np.abs(out).max() > 0


@pytest.mark.parametrize("sizes", [[1], [160, 3999], [4000], [777, 12345, 50]], ids=lambda s: str(s[:2]))
def test_split_input_gives_the_same_output_as_one_feed(demo_converter, whole_stream, sizes) -> None:
    if sizes == [1]:
        sizes = [2500, 1, 1, 4097]  # single samples and blocks that straddle step boundaries
    stream = open_stream(demo_converter, "demo", DETERMINISTIC)
    split = np.concatenate(_stream_all(stream, SPEECH_LIKE, sizes))
    assert split.shape == whole_stream.shape
    np.testing.assert_allclose(split, whole_stream, rtol=0, atol=1e-6)


def test_seeded_noise_repeats_and_differs_from_another_seed(demo_converter) -> None:
    outputs = []
    for seed, sizes in ((7, [4000]), (7, [3000, 2222]), (8, [4000])):
        stream = open_stream(demo_converter, "demo", ConversionParams(seed=seed))
        outputs.append(np.concatenate(_stream_all(stream, SPEECH_LIKE, sizes)))
    np.testing.assert_allclose(outputs[0], outputs[1], rtol=0, atol=1e-6)
    assert np.abs(outputs[0] - outputs[2]).max() > 1e-3


@pytest.mark.parametrize("samples", [0, 1, 159, 4000, 4001, 8000 + 2399, 20800])
def test_flush_makes_the_total_length_the_input_duration(demo_converter, samples) -> None:
    """Rule: feed outputs + flush output = floor(N · voice_rate / 16000) samples for N input samples."""
    stream = open_stream(demo_converter, "demo", DETERMINISTIC)
    audio = harmonic_tone(150.0, 2.0)[:samples]
    total = sum(piece.shape[0] for piece in _stream_all(stream, audio, [3000]))
    assert total == samples * 40000 // SAMPLE_RATE
    assert stream.finished and stream.flush().shape == (0,)
    with pytest.raises(InvalidInput, match="flushed"):
        stream.feed(audio)


def test_sola_finds_the_shift_of_a_synthetic_signal() -> None:
    rng = np.random.default_rng(3)
    time = np.arange(4000) / 40000
    signal = np.sin(2 * np.pi * 173.0 * time) * (
        1 + 0.5 * np.sin(2 * np.pi * 3 * time)
    ) + 0.2 * rng.standard_normal(time.size)
    crossfade, search = 2000, 400
    for shift in (0, 1, 137, 399, 400):
        reference = signal[shift : shift + crossfade]
        assert sola_offset(signal[: crossfade + search], reference) == shift
    assert sola_offset(signal[: crossfade + search], np.zeros(crossfade)) == 0  # silence: no shift


def test_fade_windows_sum_to_one_and_run_from_zero_to_one() -> None:
    fade = fade_in_window(2000)
    assert fade[0] == 0.0 and fade[-1] == pytest.approx(1.0)
    assert np.all(np.diff(fade) >= 0)
    np.testing.assert_allclose(fade[::-1], 1 - fade, atol=1e-6)  # fade-out mirrors fade-in: no dip or bump


def _join_jumps(audio: np.ndarray, block: int, first: int, joins: np.ndarray | None = None) -> tuple[float, float]:
    """Largest |x[n] − x[n−1]| across block joins (every ``block`` from ``first``, or at ``joins``), and inside blocks."""
    jumps = np.abs(np.diff(audio))
    if joins is None:
        joins = np.arange(first, audio.shape[0], block)
    joins = np.asarray(joins) - 1  # diff index of the pair straddling a join
    joins = joins[(joins >= 0) & (joins < jumps.shape[0])]
    inside = np.ones(jumps.shape[0], dtype=bool)
    inside[joins] = False
    return float(jumps[joins].max()), float(jumps[inside].max())


def test_joiner_crossfades_misaligned_steps_without_a_click() -> None:
    """Steps whose phase disagrees by up to a few ms join as smoothly as the signal runs inside them."""
    rate, block, crossfade, search = 40000, 10000, 2000, 400
    joiner = SolaJoiner(crossfade, search)
    rng = np.random.default_rng(0)
    out = []
    for step in range(6):
        start = step * block - crossfade - search
        jitter = rng.integers(-120, 120)  # each decode's phase drifts a little, as real decodes do
        time = (np.arange(start, start + block + crossfade + search) + jitter) / rate
        out.append(joiner.join((0.5 * np.sin(2 * np.pi * 210.0 * time)).astype(np.float32)))
    audio = np.concatenate(out)[crossfade + search :]
    at_joins, inside = _join_jumps(audio, block, block - crossfade - search)
    assert at_joins <= 1.5 * inside


@pytest.mark.parametrize("rms_mix_rate", [1.0, 0.25], ids=["no-mix", "mix"])
def test_stream_joins_have_no_click_on_a_smooth_input(demo_converter, rms_mix_rate) -> None:
    params = dataclasses.replace(DETERMINISTIC, rms_mix_rate=rms_mix_rate)
    stream = open_stream(demo_converter, "demo", params)
    audio = harmonic_tone(180.0, 2.0)
    out = np.concatenate([stream.feed(audio), stream.flush()])
    config, frame_out = stream.config, stream.frame_out
    ends = np.cumsum(config.step_sizes(200 + config.lag_frames)) * frame_out - config.lag_frames * frame_out
    assert ends[:3].tolist() == [7600, 27600, 67600]  # 0.25 s less the lag, then 0.5 s and 1 s steps, at 40 kHz
    at_joins, inside = _join_jumps(out, 0, 0, joins=ends[ends < out.shape[0]])
    assert at_joins <= 1.5 * inside


def test_stream_is_close_to_the_offline_conversion(demo_converter, whole_stream) -> None:
    """Measured on this tone: about 33 dB with or without the envelope mix (19 dB on a gated voice, mix on)."""
    plain = dataclasses.replace(DETERMINISTIC, rms_mix_rate=1.0)
    offline = demo_converter.convert("demo", SPEECH_LIKE, SAMPLE_RATE, plain).audio
    stream = open_stream(demo_converter, "demo", plain)
    streamed = np.concatenate([stream.feed(SPEECH_LIKE), stream.flush()])
    assert _snr_db(offline, streamed) > 25.0
    offline_mixed = demo_converter.convert("demo", SPEECH_LIKE, SAMPLE_RATE, DETERMINISTIC).audio
    assert _snr_db(offline_mixed, whole_stream) > 20.0


def test_config_rejects_lengths_that_are_not_whole_frames_or_out_of_order() -> None:
    with pytest.raises(ValueError, match="block must be a multiple of 0.01"):
        StreamConfig(block=0.255)
    with pytest.raises(ValueError, match="crossfade .* must not exceed block"):
        StreamConfig(block=0.1, crossfade=0.2)
    with pytest.raises(ValueError, match="context must be at least"):
        StreamConfig(context=0.1)
    with pytest.raises(ValueError, match="steady_block .* must not be shorter than block"):
        StreamConfig(block=0.5, steady_block=0.25)
    assert StreamConfig(block=0.1, steady_block=0.1, context=0.5).buffer_frames == 10 + 50 + 5 + 1
    assert StreamConfig(block=0.1, steady_block=0.5, context=0.5).buffer_frames == 50 + 50 + 5 + 1  # room for the steady step


def test_the_step_schedule_doubles_the_first_block_up_to_the_steady_one() -> None:
    assert [StreamConfig().step_frames(step) for step in range(4)] == [25, 50, 100, 100]
    config = StreamConfig(block=0.1, steady_block=0.5)
    assert [config.step_frames(step) for step in range(6)] == [10, 20, 40, 50, 50, 50]
    assert config.step_frames(10_000) == 50  # no overflow far into a long stream
    assert config.step_sizes(125) == [10, 20, 40, 50]  # the whole steps within 1.25 s of input
    assert StreamConfig(block=0.25, steady_block=0.25).step_sizes(100) == [25, 25, 25, 25]


def test_stream_rejects_bad_parameters_and_audio_by_field(demo_converter) -> None:
    with pytest.raises(InvalidInput) as caught:
        open_stream(demo_converter, "demo", ConversionParams(resample_sr=22050))
    assert caught.value.field == "resample_sr"
    with pytest.raises(InvalidInput) as caught:
        open_stream(demo_converter, "demo", ConversionParams(pitch_shift=99))
    assert caught.value.field == "pitch_shift"
    stream = open_stream(demo_converter, "demo", DETERMINISTIC)
    with pytest.raises(InvalidInput, match="mono"):
        stream.feed(np.zeros((2, 100), dtype=np.float32))
    with pytest.raises(InvalidInput, match="NaN"):
        stream.feed(np.full(10, np.nan, dtype=np.float32))


def _tiny_voice(path: Path, version: str, sample_rate: int, *, if_f0: bool) -> Path:
    config = official_config(version, sample_rate, if_f0=if_f0).replace(
        inter_channels=4, hidden_channels=8, filter_channels=16, n_layers=1,
        upsample_initial_channel=32, gin_channels=4,
    )  # fmt: skip
    torch.manual_seed(sample_rate)
    return save_voice_checkpoint(Synthesizer(config), path, info="stream test")


@pytest.mark.parametrize(("version", "sample_rate", "if_f0"), [("v1", 32000, False), ("v2", 48000, True)])
def test_other_voice_variants_stream_at_their_rate(
    demo_converter, tmp_path, version, sample_rate, if_f0
) -> None:
    name = f"stream-{version}-{sample_rate}"
    demo_converter.load_voice(name, _tiny_voice(tmp_path / f"{name}.pth", version, sample_rate, if_f0=if_f0))
    try:
        pieces = []
        for sizes in ([20800], [999, 4000]):
            stream = open_stream(demo_converter, name, DETERMINISTIC, StreamConfig(block=0.1, context=0.5))
            pieces.append(np.concatenate(_stream_all(stream, SPEECH_LIKE, sizes)))
        assert pieces[0].shape == (SPEECH_LIKE.shape[0] * sample_rate // SAMPLE_RATE,)
        assert np.all(np.isfinite(pieces[0])) and np.abs(pieces[0]).max() > 0
        np.testing.assert_allclose(pieces[0], pieces[1], rtol=0, atol=1e-6)
    finally:
        demo_converter.unload_voice(name)


@pytest.mark.parametrize("method", ["pm", "harvest", "crepe", "fcpe"])
def test_every_f0_method_streams_the_same_however_split(demo_converter, method) -> None:
    params = ConversionParams(f0_method=method, pitch_shift=3, seed=5)
    audio = SPEECH_LIKE[:11200]  # 0.7 s: crepe costs about 0.5 s per step on one thread
    outputs = []
    for sizes in ([11200], [1500, 2000]):
        stream = open_stream(demo_converter, "demo", params, StreamConfig(block=0.2, context=0.5))
        outputs.append(np.concatenate(_stream_all(stream, audio, sizes)))
    assert outputs[0].shape == (audio.shape[0] * 40000 // SAMPLE_RATE,)
    assert np.all(np.isfinite(outputs[0])) and np.abs(outputs[0]).max() > 0
    np.testing.assert_allclose(outputs[1], outputs[0], rtol=0, atol=1e-6)


@pytest.mark.parametrize("profile", ["2026", "2024"])
def test_stream_pitch_follows_the_profile(demo_converter, profile: str) -> None:
    """2026 fills the pitch cache's unvoiced frames (the silence before the start, a gap) as offline; 2024 keeps them."""
    # pm, not the demo's random RMVPE (which hears pitch in silence); the gap sits inside the buffer
    gap = np.concatenate([SPEECH_LIKE[:16000], np.zeros(4000, dtype=np.float32), SPEECH_LIKE[16000:20800]])
    params = dataclasses.replace(DETERMINISTIC, rvc_profile=profile, f0_method="pm")
    stream = open_stream(demo_converter, "demo", params)
    stream.feed(gap)
    coarse, f0 = stream._pitch_for_synthesis(stream.config.buffer_frames)
    if profile == "2026":
        assert (f0 > 0).all() and (coarse > 1).all()
        assert (stream._pitchf == 0).any()  # the cache keeps the estimate; a gap is re-filled as neighbours arrive
    else:
        assert (f0 == 0).any() and (coarse[f0 == 0] == 1).all()
