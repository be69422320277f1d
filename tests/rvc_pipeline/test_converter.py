"""VoiceConverter behaviour: every voice variant converts, parameters are honoured or rejected by name."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import faiss
import numpy as np
import pytest
import torch

from rvc.errors import AssetError, InvalidInput, NotFound
from rvc.infer.converter import ConverterAssets, VoiceConverter
from rvc.infer.params import ConversionParams
from rvc.infer.synthesizer import Synthesizer, load_voice_checkpoint, save_voice_checkpoint
from rvc.infer.synthesizer_config import official_config

from .conftest import harmonic_tone

ONE_SECOND = harmonic_tone(np.linspace(140.0, 200.0, 16000), 1.0)
# 1 s input: N + 2 s padding = 48000 samples -> 149 HuBERT frames -> 298 synthesizer frames
FRAMES_FOR_ONE_SECOND = 298


def _expected_length(sample_rate: int) -> int:
    return FRAMES_FOR_ONE_SECOND * sample_rate // 100 - 2 * sample_rate


def _save_tiny_voice(path: Path, version: str, sample_rate: int, *, if_f0: bool, speakers: int = 1) -> Path:
    config = official_config(version, sample_rate, if_f0=if_f0).replace(
        inter_channels=4, hidden_channels=8, filter_channels=16, n_layers=1,
        upsample_initial_channel=32, spk_embed_dim=speakers, gin_channels=4,
    )  # fmt: skip
    torch.manual_seed(sample_rate + (1 if if_f0 else 0))
    return save_voice_checkpoint(Synthesizer(config), path, info="test")


def _write_index(path: Path, dim: int) -> Path:
    vectors = np.random.default_rng(1).standard_normal((80, dim)).astype(np.float32)
    index = faiss.index_factory(dim, "IVF2,Flat")
    index.train(vectors)
    index.add(vectors)
    faiss.write_index(index, str(path))
    return path


@pytest.mark.parametrize("version", ["v1", "v2"])
@pytest.mark.parametrize("sample_rate", [32000, 40000, 48000])
@pytest.mark.parametrize("if_f0", [True, False], ids=["f0", "nof0"])
def test_every_voice_variant_converts(demo_converter, tmp_path, version, sample_rate, if_f0) -> None:
    name = f"{version}-{sample_rate}-{if_f0}"
    pth = _save_tiny_voice(tmp_path / f"{name}.pth", version, sample_rate, if_f0=if_f0)
    index = _write_index(tmp_path / f"{name}.index", 256 if version == "v1" else 768)
    info = demo_converter.load_voice(name, pth, index)
    try:
        assert (info.version, info.sample_rate, info.if_f0, info.has_index) == (
            version,
            sample_rate,
            if_f0,
            True,
        )
        params = ConversionParams(f0_method="pm", deterministic=True)
        result = demo_converter.convert(name, ONE_SECOND, 16000, params)
    finally:
        demo_converter.unload_voice(name)
    assert result.sample_rate == sample_rate
    assert result.audio.shape == (_expected_length(sample_rate),)
    assert result.audio.dtype == np.float32 and np.isfinite(result.audio).all()
    assert np.abs(result.audio).max() <= 1.0 and np.abs(result.audio).max() > 0
    assert ("f0" in result.timings) == if_f0


def test_demo_assets_load_and_convert_with_every_f0_method(demo_converter, demo_assets) -> None:
    sizes = {role: os.path.getsize(path) for role, path in demo_assets.items()}
    assert sum(sizes.values()) < 12_000_000
    checkpoint = torch.load(demo_assets["voice"], weights_only=True)
    assert set(checkpoint) == {"weight", "config", "info", "sr", "f0", "version"}
    assert (checkpoint["version"], checkpoint["sr"], checkpoint["f0"]) == ("v2", "40k", 1)
    assert all(t.dtype == torch.float16 for t in checkpoint["weight"].values())
    assert not any(key.startswith("enc_q.") for key in checkpoint["weight"])
    assert demo_converter.voices["demo"].has_index
    for method in ("rmvpe", "fcpe", "pm", "harvest", "crepe"):
        result = demo_converter.convert("demo", ONE_SECOND, 16000, ConversionParams(f0_method=method, seed=0))
        assert result.sample_rate == 40000 and result.audio.shape == (_expected_length(40000),), method
        assert np.isfinite(result.audio).all() and np.abs(result.audio).max() > 0, method


def test_demo_assets_are_reproducible_from_the_seed(tmp_path, demo_assets) -> None:
    from rvc.infer.demo_assets import write_demo_rvc_assets

    again = write_demo_rvc_assets(tmp_path / "w", tmp_path / "a", seed=0)
    first = load_voice_checkpoint(demo_assets["voice"]).model.state_dict()
    second = load_voice_checkpoint(again["voice"]).model.state_dict()
    assert all(torch.equal(first[key], second[key]) for key in first)
    assert again["rmvpe"].read_bytes() == demo_assets["rmvpe"].read_bytes()


def test_resample_sr_is_honoured(demo_converter) -> None:
    for rate in (22050, 16000, 44100):
        result = demo_converter.convert(
            "demo", ONE_SECOND, 16000, ConversionParams(resample_sr=rate, f0_method="pm")
        )
        assert result.sample_rate == rate
        assert result.audio.shape == (int(np.ceil(_expected_length(40000) * rate / 40000)),)
    same = demo_converter.convert(
        "demo", ONE_SECOND, 16000, ConversionParams(resample_sr=40000, f0_method="pm")
    )
    assert same.sample_rate == 40000 and same.audio.shape == (_expected_length(40000),)


def test_input_at_another_rate_is_resampled_to_16k(demo_converter) -> None:
    t = np.arange(44100) / 44100
    audio = (0.3 * np.sin(2 * np.pi * 180 * t)).astype(np.float32)
    result = demo_converter.convert(
        "demo", audio, 44100, ConversionParams(f0_method="pm", deterministic=True)
    )
    assert result.audio.shape == (_expected_length(40000),)


def test_deterministic_and_seeded_runs_repeat_exactly(demo_converter) -> None:
    def run(**changes):
        return demo_converter.convert(
            "demo", ONE_SECOND, 16000, ConversionParams(f0_method="pm", **changes)
        ).audio

    np.testing.assert_array_equal(run(deterministic=True), run(deterministic=True))
    np.testing.assert_array_equal(run(seed=5), run(seed=5))
    assert not np.array_equal(run(seed=5), run(seed=6))


def test_pitch_shift_raises_the_pitch_given_to_the_synthesizer(demo_converter) -> None:
    traces = {}
    for shift in (0, 12):
        traces[shift] = {}
        demo_converter.convert("demo", ONE_SECOND, 16000, ConversionParams(f0_method="pm", pitch_shift=shift),
                               trace=traces[shift])  # fmt: skip
    np.testing.assert_allclose(traces[12]["infer_pitchf"][0], 2 * traces[0]["infer_pitchf"][0], rtol=1e-6)


BAD_PARAMS = [
    ("pitch_shift", 25), ("pitch_shift", -25), ("pitch_shift", 1.5), ("f0_method", "dio"), ("index_rate", 1.5),
    ("index_rate", -0.1), ("filter_radius", 8), ("filter_radius", -1), ("rms_mix_rate", 2.0), ("protect", 0.6),
    ("protect", -0.1), ("resample_sr", 7999), ("resample_sr", 48001), ("resample_sr", -1), ("speaker_id", -1),
]  # fmt: skip


@pytest.mark.parametrize(("field", "value"), BAD_PARAMS)
def test_bad_parameters_raise_invalid_input_naming_the_field(field, value) -> None:
    # validate() runs where a job enters the pool (tests/rvc_server); the converter trusts its input.
    params = dataclasses.replace(ConversionParams(), **{field: value})
    with pytest.raises(InvalidInput, match=field) as info:
        params.validate()
    assert info.value.field == field
    assert any(ch.isdigit() for ch in info.value.message) or field == "f0_method"


def test_edge_values_are_accepted() -> None:
    for changes in (
        {"pitch_shift": -24},
        {"pitch_shift": 24},
        {"index_rate": 0},
        {"index_rate": 1},
        {"filter_radius": 7},
        {"protect": 0.5},
        {"resample_sr": 8000},
        {"resample_sr": 48000},
    ):
        ConversionParams(**changes).validate()


def test_request_errors_name_what_is_wrong(demo_converter) -> None:
    with pytest.raises(NotFound, match="nobody"):
        demo_converter.convert("nobody", ONE_SECOND, 16000, ConversionParams())
    with pytest.raises(InvalidInput, match="speaker_id") as info:
        demo_converter.convert("demo", ONE_SECOND, 16000, ConversionParams(speaker_id=1))
    assert info.value.field == "speaker_id"
    with pytest.raises(InvalidInput, match="at least"):
        demo_converter.convert("demo", ONE_SECOND[:800], 16000, ConversionParams())
    with pytest.raises(InvalidInput, match="NaN"):
        demo_converter.convert("demo", np.full(16000, np.nan, dtype=np.float32), 16000, ConversionParams())
    with pytest.raises(NotFound):
        demo_converter.unload_voice("nobody")


def test_rmvpe_requires_its_asset_and_bad_assets_raise_asset_error(demo_assets, tmp_path) -> None:
    converter = VoiceConverter(ConverterAssets(demo_assets["hubert"], None))
    converter.load_voice("demo", demo_assets["voice"])
    assert not converter.voices["demo"].has_index
    with pytest.raises(InvalidInput, match="rmvpe"):
        converter.convert("demo", ONE_SECOND, 16000, ConversionParams(f0_method="rmvpe"))
    converter.warm_up()  # pm, as no RMVPE is loaded
    with pytest.raises(AssetError):
        converter.load_voice("broken", tmp_path / "missing.pth")
    with pytest.raises(AssetError):
        VoiceConverter(ConverterAssets(demo_assets["hubert"], tmp_path / "missing_rmvpe.pt"))


def test_silent_input_converts_without_nan(demo_converter) -> None:
    result = demo_converter.convert(
        "demo", np.zeros(16000, dtype=np.float32), 16000, ConversionParams(f0_method="pm")
    )
    assert np.isfinite(result.audio).all()


def test_bf16_decoder_is_opt_in_and_stays_close_to_fp32(demo_converter, demo_assets) -> None:
    bf16 = VoiceConverter(
        ConverterAssets(demo_assets["hubert"], demo_assets["rmvpe"]), crepe_model="tiny", precision="bf16"
    )
    bf16.load_voice("demo", demo_assets["voice"], demo_assets["index"])
    assert demo_converter.precision == "fp32" and demo_converter.decoder_dtype is None
    params = ConversionParams(deterministic=True)
    exact = demo_converter.convert("demo", ONE_SECOND, 16000, params).audio
    reduced = bf16.convert("demo", ONE_SECOND, 16000, params).audio
    assert reduced.shape == exact.shape and reduced.dtype == np.float32
    difference = float(np.abs(reduced - exact).max())
    assert 0.0 < difference < 0.02  # bf16 really ran, and stayed near the float32 result


def test_fp16_runs_hubert_and_rmvpe_in_half_too_as_the_official_half_mode(demo_converter, demo_assets) -> None:
    """RVC_PRECISION=fp16 (CUDA only in the service) loads HuBERT and RMVPE in float16 and decodes under
    float16 autocast. The CPU runs float16 too, so the same models, loaded as the converter loads them
    for fp16, check the pipeline's casts here: half weights, float32 features out, audio near float32's."""
    from rvc.infer.converter import decoder_dtype, extractor_dtype
    from rvc.infer.hubert import ContentEncoder
    from rvc.infer.pipeline import SegmentModels, run_pipeline
    from rvc.infer.rmvpe import RMVPE

    assert (extractor_dtype("fp16"), decoder_dtype("fp16", torch.device("cuda"))) == (torch.float16, torch.float16)
    assert extractor_dtype("fp32") == extractor_dtype("bf16") == torch.float32  # bf16: decoder only
    hubert = ContentEncoder.from_fairseq(demo_assets["hubert"], dtype=extractor_dtype("fp16"))
    rmvpe = RMVPE.from_pretrained(demo_assets["rmvpe"], dtype=extractor_dtype("fp16"))
    assert {p.dtype for p in hubert.model.parameters()} == {p.dtype for p in rmvpe.model.parameters()} == {torch.float16}
    voice = load_voice_checkpoint(demo_assets["voice"])
    voice.model.dec.autocast_dtype = torch.float16
    params = ConversionParams(deterministic=True)
    audio = ONE_SECOND.astype(np.float64)  # run_pipeline's input, as the converter hands it on
    with torch.inference_mode():
        half, _ = run_pipeline(audio, SegmentModels(hubert, voice.model, voice.version, None, torch.device("cpu")),
                               params, if_f0=True, sample_rate=voice.sample_rate, rmvpe=rmvpe)
        resident = demo_converter.resident("demo")
        exact, _ = run_pipeline(audio, SegmentModels(demo_converter.hubert, resident.checkpoint.model,
                                                     voice.version, None, torch.device("cpu")),
                                params, if_f0=True, sample_rate=voice.sample_rate, rmvpe=demo_converter.rmvpe)
    assert half.dtype == exact.dtype == np.float32 and half.shape == exact.shape and np.isfinite(half).all()
    difference = float(np.abs(half - exact).max())
    assert 0.0 < difference < 0.05, difference  # half really ran, and stayed near the float32 result


@pytest.mark.parametrize(("precision", "message"), [("fp16", "CUDA"), ("int8", "precision must be one of")])
def test_unusable_precision_is_refused_at_construction(demo_assets, precision: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        VoiceConverter(ConverterAssets(demo_assets["hubert"], demo_assets["rmvpe"]), precision=precision)
