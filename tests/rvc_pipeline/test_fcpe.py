"""FCPE with torchfcpe's bundled weights: parity with torchfcpe itself, loader checks, front end, decoding.

The golden (fixtures/fcpe_espeak.npz) holds espeak-ng speech and the f0 torchfcpe 0.0.4 computed for
it in an environment that has torchaudio (fixtures/make_fcpe_golden.py); here only our code runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from rvc.errors import AssetError, InvalidInput
from rvc.infer.converter import ConverterAssets, VoiceConverter
from rvc.infer.f0 import F0_MAX, F0_MIN, PM_VOICING_THRESHOLD
from rvc.infer.fcpe import (
    FCPE,
    WEIGHTS_NAME,
    FCPEMel,
    bundled_weights,
    decode_local_argmax,
    locate_weights,
    slaney_mel_filterbank,
)
from rvc.infer.fcpe_net import FCPEConfig, FCPENet
from rvc.infer.params import ConversionParams
from rvc.infer.weight_norm import split_weight_norm
from tests.asset_files import assert_absent_and_garbage_files_are_asset_errors

GOLDEN = Path(__file__).parent / "fixtures" / "fcpe_espeak.npz"
SAMPLE_RATE = 16000


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    return dict(np.load(GOLDEN))


@pytest.fixture(scope="session")
def fcpe_model() -> FCPE:
    path = bundled_weights()
    if path is None:
        raise RuntimeError("torchfcpe is not installed: run scripts/setup_env.sh (it installs it with --no-deps)")
    return FCPE.from_pretrained(path)


def _speech(golden: dict[str, np.ndarray], name: str) -> np.ndarray:
    return golden[f"audio_{name}"].astype(np.float32) / 32768.0


def _cents(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(1200.0 * np.log2(a / b))


@pytest.mark.parametrize("name", ["male", "female", "short"])
def test_f0_matches_torchfcpe_on_espeak_speech(fcpe_model: FCPE, golden, name: str) -> None:
    expected = golden[f"f0_{name}"]
    f0 = fcpe_model.infer_from_audio(_speech(golden, name))
    assert f0.dtype == np.float32 and f0.shape == expected.shape == (golden[f"audio_{name}"].size // 160 + 1,)
    voiced = expected > 0
    np.testing.assert_array_equal(f0 > 0, voiced)
    assert voiced.sum() >= 3
    assert _cents(f0[voiced], expected[voiced]).max() <= 1.0
    assert np.all(f0[~voiced] == 0)


def test_golden_records_how_it_was_made(golden) -> None:
    meta = json.loads(str(golden["meta"]))
    assert meta["torchfcpe"].startswith("0.0.") and "espeak_ng" in meta
    assert set(meta["commands"]) == {"male", "female"}


def test_fcpe_agrees_with_praat_on_clean_male_speech(fcpe_model: FCPE, golden) -> None:
    """Real weights, real speech: FCPE and Praat's autocorrelation agree on nearly every voiced frame.

    Frames are matched by time (FCPE's frame i is centred on sample 160 i + 80). The female golden
    voice (espeak-ng's f3 variant) is left out: there Praat and FCPE disagree by an octave on a quarter
    of the frames, and WORLD's harvest sides with FCPE, so neither is a reference (README, RVC section).
    """
    import parselmouth

    audio = _speech(golden, "male").astype(np.float64)
    f0 = fcpe_model.infer_from_audio(audio)
    pitch = parselmouth.Sound(audio, SAMPLE_RATE).to_pitch_ac(
        time_step=0.01, voicing_threshold=PM_VOICING_THRESHOLD, pitch_floor=F0_MIN, pitch_ceiling=F0_MAX
    )
    praat = pitch.selected_array["frequency"]
    frames = np.clip(np.rint((pitch.xs() * SAMPLE_RATE - 80) / 160).astype(int), 0, f0.size - 1)
    ours = f0[frames]
    voiced = praat > 0
    agree = (ours[voiced] > 0) & (_cents(np.where(ours[voiced] > 0, ours[voiced], 1.0), praat[voiced]) <= 50)
    assert voiced.sum() > 150
    assert agree.mean() >= 0.97


def test_bundled_checkpoint_loads_as_the_default_config(fcpe_model: FCPE) -> None:
    model = fcpe_model.model
    assert model.config == FCPEConfig()
    assert all(p.dtype == torch.float32 for p in model.parameters()) and not model.training
    path = bundled_weights()
    assert path is not None and path.name == WEIGHTS_NAME
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    assert torch.equal(model.cent_table, checkpoint["model"]["cent_table"])
    reference = torch._weight_norm(
        checkpoint["model"]["output_proj.weight_v"], checkpoint["model"]["output_proj.weight_g"], 0
    )
    assert torch.equal(model.output_proj.weight, reference)


def _tiny_checkpoint(path: Path, **changes: object) -> Path:
    """A random conv-only FCPE in torchfcpe's checkpoint layout (weight-normed projection, unused keys kept)."""
    config = FCPEConfig(hidden_dims=16, n_layers=2)
    torch.manual_seed(0)
    net = FCPENet(config)
    state = split_weight_norm(net.state_dict(), ["output_proj"])
    state["output_proj.weight_g"] = state["output_proj.weight_g"].reshape(-1, 1)
    state["gaussian_blurred_cent_mask"] = torch.tensor(6000.0)
    for i in range(config.n_layers):
        state[f"net.encoder_layers.{i}.norm.weight"] = torch.ones(16)
        state[f"net.encoder_layers.{i}.norm.bias"] = torch.zeros(16)
    for key, value in changes.items():
        if value is None:
            state.pop(key)
        else:
            state[key] = value  # type: ignore[assignment]
    mel = {"sr": 16000, "num_mels": 128, "n_fft": 1024, "win_size": 1024, "hop_size": 160, "fmin": 0, "fmax": 8000}
    model = {"type": "CFNaiveMelPE", "out_dims": 360, "hidden_dims": 16, "n_layers": 2, "n_heads": 8,
             "f0_min": 32.7, "f0_max": 1975.5, "use_fa_norm": True, "conv_only": True}  # fmt: skip
    torch.save({"global_step": 1, "model": state, "config_dict": {"mel": mel, "model": model}}, path)
    return path


def test_checkpoint_round_trip_gives_the_same_salience(tmp_path: Path) -> None:
    path = _tiny_checkpoint(tmp_path / "tiny.pt")
    torch.manual_seed(0)
    reference = FCPENet(FCPEConfig(hidden_dims=16, n_layers=2)).eval()
    loaded = FCPE.from_pretrained(path)
    mel = torch.randn(1, 50, 128)
    with torch.inference_mode():
        torch.testing.assert_close(loaded.model(mel), reference(mel), rtol=0, atol=1e-6)


def test_checkpoint_keys_are_checked_by_name(tmp_path: Path) -> None:
    broken = _tiny_checkpoint(
        tmp_path / "broken.pt", **{"norm.bias": None, "input_stack.2.weight": torch.zeros(3)}
    )
    with pytest.raises(AssetError, match=r"missing keys: norm\.bias.*unexpected keys: input_stack\.2\.weight"):
        FCPE.from_pretrained(broken)
    assert_absent_and_garbage_files_are_asset_errors(FCPE.from_pretrained, tmp_path, ".pt")


def test_checkpoint_for_another_front_end_is_refused(tmp_path: Path) -> None:
    path = _tiny_checkpoint(tmp_path / "tiny.pt")
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["config_dict"]["mel"]["hop_size"] = 256
    torch.save(checkpoint, path)
    with pytest.raises(AssetError, match="another mel front end.*hop_size"):
        FCPE.from_pretrained(path)


def test_config_rejects_variants_that_are_not_built() -> None:
    with pytest.raises(ValueError, match="conv_only"):
        FCPEConfig(conv_only=False)
    with pytest.raises(ValueError, match="hidden_dims"):
        FCPEConfig(hidden_dims=10)


@pytest.mark.parametrize("samples", [1, 159, 160, 431, 432, 433, 1023, 16000, 16159])
def test_front_end_gives_one_frame_per_hop_plus_one(samples: int) -> None:
    wav = torch.from_numpy(np.random.default_rng(samples).uniform(-0.5, 0.5, samples).astype(np.float32))
    with torch.inference_mode():
        mel = FCPEMel(128)(wav.unsqueeze(0))
    assert mel.shape == (1, samples // 160 + 1, 128) and torch.isfinite(mel).all()


def test_mel_filterbank_is_slaney_scaled_up_to_8_khz() -> None:
    basis = slaney_mel_filterbank(16000, 1024, 128, 0.0, 8000.0)
    assert basis.shape == (128, 513) and basis.dtype == np.float32
    assert np.all(basis.max(axis=1) > 0)  # no empty band
    assert basis[:, -1].max() == 0  # the Nyquist bin lies on the last band's upper edge


def test_local_argmax_decoding_clamps_at_the_edges_and_masks_weak_frames() -> None:
    table = torch.linspace(0.0, 359.0 * 20, 360)
    salience = torch.full((1, 3, 360), 1e-4)
    salience[0, 0, 0] = 0.9  # peak at the lowest bin: its window clamps to bins 0..4 (bin 0 counted 5 times)
    salience[0, 1, 100], salience[0, 1, 101] = 0.5, 0.5
    salience[0, 2, 200] = 0.006  # not above the threshold
    f0 = decode_local_argmax(salience, table, 0.006)[0]
    window = torch.tensor([0.9] * 5 + [1e-4] * 4)
    cents0 = float((window * table[[0, 0, 0, 0, 0, 1, 2, 3, 4]]).sum() / window.sum())
    assert f0[0].item() == pytest.approx(10 * 2 ** (cents0 / 1200), rel=1e-6)
    assert f0[1].item() == pytest.approx(10 * 2 ** (2010 / 1200), rel=1e-4)
    assert f0[2].item() == 0.0


def test_assets_file_wins_over_the_wheel_and_neither_is_none(tmp_path: Path) -> None:
    wheel = tmp_path / "wheel.pt"
    wheel.write_bytes(b"x")
    own = tmp_path / "fcpe" / WEIGHTS_NAME
    assert locate_weights(own, wheel) == wheel
    own.parent.mkdir()
    own.write_bytes(b"x")
    assert locate_weights(own, wheel) == own
    assert locate_weights(tmp_path / "absent.pt", None) is None


def test_converter_without_weights_names_both_places(demo_assets, tmp_path: Path) -> None:
    own = tmp_path / "fcpe" / WEIGHTS_NAME
    converter = VoiceConverter(
        ConverterAssets(demo_assets["hubert"], demo_assets["rmvpe"], fcpe_path=own, fcpe_bundled=None)
    )
    converter.load_voice("demo", demo_assets["voice"])
    tone = np.sin(2 * np.pi * 150 * np.arange(8000) / SAMPLE_RATE).astype(np.float32)
    with pytest.raises(InvalidInput, match=r"pip install --no-deps 'torchfcpe.*" + str(own)) as caught:
        converter.convert("demo", tone, SAMPLE_RATE, ConversionParams(f0_method="fcpe"))
    assert caught.value.field == "f0_method"
    assert converter.convert("demo", tone, SAMPLE_RATE, ConversionParams(f0_method="pm")).audio.size > 0


def test_pitch_inputs_keep_fcpe_raw_float32_and_shift_it(fcpe_model: FCPE, golden) -> None:
    from rvc.infer.f0 import estimate_f0, pitch_inputs

    audio = _speech(golden, "male").astype(np.float64)  # the pipeline hands over float64
    coarse, f0 = pitch_inputs(estimate_f0("fcpe", audio, audio.size // 160, fcpe=fcpe_model), pitch_shift=12)
    expected = golden["f0_male"]
    assert f0.dtype == np.float32 and f0.shape == expected.shape
    voiced = expected > 0
    np.testing.assert_array_equal(f0 > 0, voiced)  # unvoiced frames stay 0: no fill here
    assert _cents(f0[voiced], 2 * expected[voiced]).max() <= 1.0
    assert coarse.dtype == np.int32 and np.all(coarse[~voiced] == 1) and np.all(coarse[voiced] > 1)
