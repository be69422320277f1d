"""RMVPE in chunks: bounded windows for long inputs, the whole-input result to float rounding.

The whole-input path is the reference (it is what the goldens pin); chunked runs of a long, voiced,
gliding input must give the same salience to ~1e-7, the same argmax and voicing on every frame, and
f0 within 1e-6 relative. Weights: the rmvpe_tiny fixture (the real rmvpe.pt cannot be fetched here).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rvc.infer.rmvpe import RMVPE, ChunkPlan, cents_to_f0, local_average_cents

SAMPLE_RATE = 16000
WHOLE = ChunkPlan(core=2**40, context=0)


def gliding_voice(seconds: float, seed: int = 0) -> np.ndarray:
    """(N,) float32 at 16 kHz: 7 harmonics of an f0 gliding over 90-240 Hz, pulsing loudness, faint noise."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    f0 = 150 + 60 * np.sin(2 * np.pi * 0.3 * t) + 30 * np.sin(2 * np.pi * 2.1 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    envelope = (0.5 + 0.5 * np.sin(2 * np.pi * 0.7 * t)) ** 2
    wav = sum(np.sin(k * phase) / k for k in range(1, 8)) * envelope * 0.3
    return (wav + 0.01 * np.random.default_rng(seed).standard_normal(t.size)).astype(np.float32)


def with_plan(model: RMVPE, plan: ChunkPlan) -> RMVPE:
    return RMVPE(model.model, device=model.device, chunks=plan)


def widest_window(model: RMVPE, wav: np.ndarray) -> tuple[np.ndarray, int]:
    """The salience and the most frames the network saw in one call (what device memory follows)."""
    seen: list[int] = []
    handle = model.model.register_forward_pre_hook(lambda module, args: seen.append(args[0].shape[-1]))
    try:
        return model.salience(wav), max(seen)
    finally:
        handle.remove()


def assert_same_pitch(whole: np.ndarray, chunked: np.ndarray) -> float:
    assert chunked.shape == whole.shape and chunked.dtype == np.float32
    difference = float(np.abs(whole - chunked).max())
    assert difference <= 1e-6, difference
    np.testing.assert_array_equal(whole.argmax(axis=1), chunked.argmax(axis=1))
    f0_whole = cents_to_f0(local_average_cents(whole, threshold=0.03))
    f0_chunked = cents_to_f0(local_average_cents(chunked, threshold=0.03))
    np.testing.assert_array_equal(f0_whole > 0, f0_chunked > 0)
    voiced = f0_whole > 0
    assert voiced.mean() > 0.2  # the comparison covers pitched frames (random weights voice ~35%)
    np.testing.assert_allclose(f0_chunked[voiced], f0_whole[voiced], rtol=1e-6, atol=0)
    return difference


def test_windows_cover_every_frame_once_on_the_grid() -> None:
    plan = ChunkPlan(core=256, context=64)
    frames = 1000
    windows = plan.windows(frames)
    kept = np.concatenate([np.arange(keep_start, keep_stop) for _, _, keep_start, keep_stop in windows])
    np.testing.assert_array_equal(kept, np.arange(frames))
    for read_start, read_stop, keep_start, keep_stop in windows:
        assert read_start % 32 == 0 and keep_start % 32 == 0
        assert read_start == max(0, keep_start - 64) and read_stop == min(frames, keep_stop + 64)
    assert plan.windows(256 + 128) == [(0, 384, 0, 384)]  # short inputs: the whole-input path


def test_plan_must_sit_on_the_unet_grid(rmvpe_model: RMVPE) -> None:
    with pytest.raises(ValueError, match="multiples of 32"):
        ChunkPlan(core=100, context=64)
    with pytest.raises(ValueError, match="not a multiple of 32"):
        RMVPE(rmvpe_model.model, chunks=ChunkPlan(core=64, context=16, multiple=16))


def test_short_input_is_the_whole_input_path_bit_for_bit(rmvpe_model: RMVPE) -> None:
    wav = gliding_voice(30.0)
    np.testing.assert_array_equal(rmvpe_model.salience(wav), with_plan(rmvpe_model, WHOLE).salience(wav))


def test_chunks_match_the_whole_input_with_small_windows(rmvpe_model: RMVPE) -> None:
    """Five interior boundaries (10.24 s kept, 2.56 s context) over 60 s."""
    wav = gliding_voice(60.0, seed=1)
    whole = with_plan(rmvpe_model, WHOLE).salience(wav)
    chunked, widest = widest_window(with_plan(rmvpe_model, ChunkPlan(core=1024, context=256)), wav)
    assert widest <= 1024 + 2 * 256
    assert_same_pitch(whole, chunked)


def test_too_little_context_is_visible(rmvpe_model: RMVPE) -> None:
    """The check above has teeth: without context the chunk edges change the pitch."""
    wav = gliding_voice(30.0, seed=2)
    whole = with_plan(rmvpe_model, WHOLE).salience(wav)
    chunked = with_plan(rmvpe_model, ChunkPlan(core=1024, context=0)).salience(wav)
    assert np.abs(whole - chunked).max() > 1e-3


@pytest.mark.slow
def test_600_seconds_default_plan_matches_the_whole_input(rmvpe_model: RMVPE) -> None:
    """The longest /rvc input, with the service's default plan (41 s kept, 10 s context each side)."""
    wav = gliding_voice(600.0, seed=3)
    whole = with_plan(rmvpe_model, WHOLE).salience(wav)
    chunked, widest = widest_window(rmvpe_model, wav)
    assert widest <= ChunkPlan().core + 2 * ChunkPlan().context < whole.shape[0] / 9
    assert_same_pitch(whole, chunked)
    # infer_from_audio's f0, decoded from the chunked salience (a third 600 s pass would add ~20 s)
    assert cents_to_f0(local_average_cents(chunked, threshold=0.03)).shape == (1 + wav.size // 160,)


def test_chunked_output_is_float32_on_the_models_device(rmvpe_model: RMVPE) -> None:
    wav = gliding_voice(20.0, seed=4)
    salience = with_plan(rmvpe_model, ChunkPlan(core=512, context=128)).salience(wav)
    assert salience.dtype == np.float32 and np.isfinite(salience).all()
    assert rmvpe_model.mel.window.device == torch.device("cpu")
