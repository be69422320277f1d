"""Whole-pipeline parity with the official WebUI ``main`` (the ``2026`` profile), goldens/rvc_2026_tiny.

The goldens were written by tools/make_rvc_2026_goldens.py from main's own ``VC.vc_single`` on the
models of ../shared/fixtures; its HuBERT came in main's ``assets/hubert_base`` layout, converted from
the fixture's ``hubert_base.pt``. The converter here reads that same layout, so the new HuBERT
loader is exercised too. Output must match within 1 int16 step, the pitch exactly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rvc.infer.converter import ConversionParams, ConverterAssets, VoiceConverter
from rvc.infer.hubert import write_transformers_folder
from rvc.infer.pipeline import SegmentConfig

GOLDENS = Path(__file__).parent / "goldens" / "rvc_2026_tiny"
CASES = {
    "rmvpe": {},
    "pm": {"f0_method": "pm"},
    "rmvpe_noindex": {"index_rate": 0.0},
    "rmvpe_resample16k": {"resample_sr": 16000},
    "pm_protect05": {"f0_method": "pm", "protect": 0.5},
}


@pytest.fixture(scope="module")
def hubert_folder(shared_fixtures: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture's HuBERT in main's layout (config.json, preprocessor_config.json, pytorch_model.bin)."""
    folder = tmp_path_factory.mktemp("assets") / "hubert_base"
    return write_transformers_folder(shared_fixtures / "rvc_pipeline_tiny" / "hubert_base.pt", folder,
                                     official_layout=True)  # fmt: skip


def _converter(fixtures: Path, hubert: Path, profile: str, segments: SegmentConfig | None = None) -> VoiceConverter:
    converter = VoiceConverter(ConverterAssets(hubert, fixtures / "rmvpe_tiny" / "rmvpe.pt"),
                               segments=segments or SegmentConfig(), profile=profile)  # fmt: skip
    converter.load_voice("tiny", fixtures / "rvc_synth_v2_tiny" / "tiny_v2_40k.pth",
                         fixtures / "rvc_pipeline_tiny" / "added_IVF5_Flat_nprobe_1_tiny_v2.index")  # fmt: skip
    return converter


@pytest.fixture(scope="module")
def converter(shared_fixtures: Path, hubert_folder: Path) -> VoiceConverter:
    return _converter(shared_fixtures, hubert_folder, "2026")


@pytest.fixture(scope="module")
def input_audio(pipeline_tiny: Path) -> np.ndarray:
    return np.load(pipeline_tiny / "inputs.npz")["audio"]


def _assert_matches(golden: dict[str, np.ndarray], produced: np.ndarray, trace: dict[str, list[np.ndarray]]) -> None:
    expected = golden["audio_int16"]
    assert produced.shape == expected.shape
    assert np.abs(produced.astype(np.int32) - expected).max() <= 1
    pitch = np.concatenate(trace["pitch_full"])
    np.testing.assert_array_equal(pitch, golden["pitch_full"])
    np.testing.assert_allclose(np.concatenate(trace["pitchf_full"]), golden["pitchf_full"], rtol=1e-6, atol=1e-3)


@pytest.mark.parametrize("case", sorted(CASES))
def test_2026_conversion_matches_official_main(case, converter, input_audio) -> None:
    golden = dict(np.load(GOLDENS / f"expected_{case}.npz"))
    trace: dict[str, list[np.ndarray]] = {}
    params = ConversionParams(pitch_shift=3, deterministic=True, **CASES[case])
    result = converter.convert("tiny", input_audio, 16000, params, trace=trace)
    assert result.sample_rate == int(golden["sr_out"])
    _assert_matches(golden, result.to_int16(), trace)
    # the fill leaves no unvoiced frame (the input has a 0.3 s silent gap), so the coarse pitch never is 1
    assert (golden["pitchf_full"] > 0).all() and (np.concatenate(trace["pitch_full"]) > 1).all()


def test_2026_split_input_matches_official_main(shared_fixtures, hubert_folder, input_audio) -> None:
    converter = _converter(shared_fixtures, hubert_folder, "2026", SegmentConfig(x_pad=1, x_query=1, x_center=2,
                                                                                  x_max=3))  # fmt: skip
    golden = dict(np.load(GOLDENS / "expected_rmvpe_split.npz"))
    trace: dict[str, list[np.ndarray]] = {}
    result = converter.convert("tiny", input_audio, 16000, ConversionParams(pitch_shift=3, deterministic=True),
                               trace=trace)  # fmt: skip
    np.testing.assert_array_equal(np.concatenate(trace["infer_p_len"]), [400, 398])
    _assert_matches(golden, result.to_int16(), trace)


def test_protect_has_no_effect_once_pitch_is_filled(converter, input_audio) -> None:
    protected, unprotected = (
        converter.convert("tiny", input_audio, 16000, ConversionParams(f0_method="pm", protect=protect,
                                                                       deterministic=True)).audio
        for protect in (0.1, 0.5)
    )  # fmt: skip
    np.testing.assert_array_equal(protected, unprotected)


def test_request_profile_overrides_the_converter_default(converter, input_audio) -> None:
    """The same converter answers a 2024 request as 20240604 would: far from main's output."""
    golden = dict(np.load(GOLDENS / "expected_pm.npz"))["audio_int16"]
    old = converter.convert("tiny", input_audio, 16000,
                            ConversionParams(f0_method="pm", pitch_shift=3, deterministic=True, rvc_profile="2024"))
    assert np.abs(old.to_int16().astype(np.int32) - golden).max() > 100
