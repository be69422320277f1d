"""Whole-pipeline parity with the official RVC offline path (rvc_pipeline_tiny goldens, 20240604).

The goldens come from the 20240604 release, so the converter runs the ``2024`` profile
(test_profile_parity.py holds the ``2026`` ones).

The voice, HuBERT, RMVPE and index are read from the fixture files by the same loaders
users' files go through; deterministic mode zeroes the synthesizer's random draws, as the
goldens did. Output must match within 1 LSB of int16, intermediates within the README's
tolerances.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from rvc.infer.converter import ConversionParams, ConverterAssets, VoiceConverter
from rvc.infer.pipeline import SegmentConfig

FLOAT_KEYS = ("hubert_feats", "feats_blended", "infer_feats", "synth_audio", "audio_before_rms",
              "audio_after_rms", "hp_audio_16k")  # fmt: skip
EXACT_KEYS = ("pitch_full", "infer_pitch", "infer_p_len", "segment_len", "index_ix", "protect_mask")
CASES = {
    "rmvpe": {},
    "pm": {"f0_method": "pm"},
    "rmvpe_noindex": {"index_rate": 0.0},
    "rmvpe_resample16k": {"resample_sr": 16000},
}


def _converter(fixtures: Path, segments: SegmentConfig | None = None) -> VoiceConverter:
    pipeline = fixtures / "rvc_pipeline_tiny"
    assets = ConverterAssets(
        hubert_path=pipeline / "hubert_base.pt", rmvpe_path=fixtures / "rmvpe_tiny" / "rmvpe.pt"
    )
    converter = VoiceConverter(assets, segments=segments or SegmentConfig(), profile="2024")
    converter.load_voice(
        "tiny", fixtures / "rvc_synth_v2_tiny" / "tiny_v2_40k.pth",
        pipeline / "added_IVF5_Flat_nprobe_1_tiny_v2.index",
    )  # fmt: skip
    return converter


@pytest.fixture(scope="module")
def converter(shared_fixtures: Path) -> VoiceConverter:
    return _converter(shared_fixtures)


@pytest.fixture(scope="module")
def input_audio(pipeline_tiny: Path) -> np.ndarray:
    return np.load(pipeline_tiny / "inputs.npz")["audio"]


def _joined(trace: dict[str, list[np.ndarray]], key: str) -> np.ndarray:
    parts = trace[key]
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _assert_matches_golden(trace: dict, golden: dict, result, expected_rate: int) -> None:
    expected = golden["audio_int16"]
    produced = result.to_int16()
    assert result.sample_rate == int(golden["sr_out"]) == expected_rate
    assert produced.shape == expected.shape
    assert np.abs(produced.astype(np.int32) - expected).max() <= 1
    for key in golden:
        if key in FLOAT_KEYS:
            np.testing.assert_allclose(_joined(trace, key), golden[key], rtol=0, atol=1e-4, err_msg=key)
        elif key in EXACT_KEYS:
            np.testing.assert_array_equal(_joined(trace, key), golden[key], err_msg=key)
    if "index_score" in golden:
        np.testing.assert_allclose(
            _joined(trace, "index_score"), golden["index_score"], rtol=1e-5, err_msg="score"
        )
    if "pitchf_full" in golden:
        pitchf, expected_pitchf = _joined(trace, "pitchf_full"), golden["pitchf_full"]
        np.testing.assert_array_equal(pitchf > 0, expected_pitchf > 0)
        voiced = expected_pitchf > 0
        assert np.all(
            np.abs(pitchf - expected_pitchf)[voiced] <= np.maximum(1e-3, 1e-6 * expected_pitchf[voiced])
        )
    if "infer_pitchf" in golden:
        np.testing.assert_allclose(
            _joined(trace, "infer_pitchf"), golden["infer_pitchf"], rtol=1e-6, atol=1e-3
        )


@pytest.mark.parametrize("case", sorted(CASES))
def test_deterministic_conversion_matches_reference(case, converter, input_audio, pipeline_tiny) -> None:
    golden = dict(np.load(pipeline_tiny / f"expected_{case}.npz"))
    trace: dict[str, list[np.ndarray]] = {}
    params = ConversionParams(pitch_shift=3, deterministic=True, **CASES[case])
    result = converter.convert("tiny", input_audio, 16000, params, trace=trace)
    _assert_matches_golden(trace, golden, result, 16000 if case.endswith("16k") else 40000)
    assert result.audio.dtype == np.float32 and np.abs(result.audio).max() <= 1.0
    if case == "rmvpe_noindex":
        assert "index_ix" not in trace and "index" not in result.timings
    assert {"preprocess", "f0", "hubert", "synthesizer", "postprocess", "total"} <= set(result.timings)


def test_long_input_is_split_at_the_quiet_gap_as_reference(
    shared_fixtures, input_audio, pipeline_tiny
) -> None:
    converter = _converter(shared_fixtures, SegmentConfig(x_pad=1, x_query=1, x_center=2, x_max=3))
    golden = dict(np.load(pipeline_tiny / "expected_rmvpe_split.npz"))
    trace: dict[str, list[np.ndarray]] = {}
    result = converter.convert("tiny", input_audio, 16000, ConversionParams(pitch_shift=3, deterministic=True),
                               trace=trace)  # fmt: skip
    np.testing.assert_array_equal(_joined(trace, "segment_len"), [64160, 64000])
    np.testing.assert_array_equal(_joined(trace, "infer_p_len"), [400, 398])
    _assert_matches_golden(trace, golden, result, 40000)


def test_output_length_follows_reference_rule(converter) -> None:
    # N + 2 t_pad = 48000 -> T_h = 149 -> 298 frames * 400 - 2 * 40000
    audio = (0.2 * np.sin(2 * np.pi * 150 * np.arange(16000) / 16000)).astype(np.float32)
    result = converter.convert("tiny", audio, 16000, ConversionParams(f0_method="pm", deterministic=True))
    assert result.audio.shape == (39200,)


def test_trained_index_path_reads_its_added_twin(converter, shared_fixtures: Path, tmp_path: Path) -> None:
    source = shared_fixtures / "rvc_pipeline_tiny" / "added_IVF5_Flat_nprobe_1_tiny_v2.index"
    shutil.copy(source, tmp_path / source.name)
    info = converter.load_voice("again", shared_fixtures / "rvc_synth_v2_tiny" / "tiny_v2_40k.pth",
                                tmp_path / "trained_IVF5_Flat_nprobe_1_tiny_v2.index")  # fmt: skip
    assert info.has_index
    converter.unload_voice("again")
    assert set(converter.voices) == {"tiny"}
