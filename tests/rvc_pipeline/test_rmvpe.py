"""RMVPE parity with the official implementation (rmvpe_tiny goldens) and loader checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rvc.errors import AssetError
from rvc.infer.rmvpe import RMVPE, MelSpectrogram, cents_to_f0, htk_mel_filterbank, local_average_cents
from rvc.infer.rmvpe_net import E2E, RMVPEConfig
from tests.asset_files import assert_absent_and_garbage_files_are_asset_errors


@pytest.fixture(scope="module")
def goldens(rmvpe_tiny: Path) -> dict[str, np.ndarray]:
    return dict(np.load(rmvpe_tiny / "expected.npz"))


@pytest.fixture(scope="module")
def inputs(rmvpe_tiny: Path) -> dict[str, np.ndarray]:
    return dict(np.load(rmvpe_tiny / "inputs.npz"))


def test_loader_reads_tiny_config_and_casts_fp16_to_fp32(rmvpe_model: RMVPE, rmvpe_tiny: Path) -> None:
    meta = json.loads((rmvpe_tiny / "meta.json").read_text())["tiny_config"]
    config = rmvpe_model.model.config
    assert config == RMVPEConfig(**{**meta, "kernel_size": tuple(meta["kernel_size"])})
    assert all(p.dtype == torch.float32 for p in rmvpe_model.model.parameters())
    assert not rmvpe_model.model.training


def test_full_size_network_matches_released_checkpoint_keys(shared_fixtures: Path) -> None:
    reference = json.loads((shared_fixtures.parent / "reference" / "keys" / "rmvpe_keys.json").read_text())
    with torch.device("meta"):
        model = E2E(RMVPEConfig())
    shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert shapes == reference["keys"]
    assert sum(p.numel() for p in model.parameters()) == reference["n_params"]


def test_mel_filterbank_and_front_end_match_reference(goldens, inputs) -> None:
    basis = htk_mel_filterbank(16000, 1024, 128, 30.0, 8000.0)
    np.testing.assert_array_equal(basis, goldens["mel_basis"])
    with torch.inference_mode():
        mel = MelSpectrogram()(torch.from_numpy(inputs["audio"]).unsqueeze(0)).numpy()
    assert mel.shape == (1, 128, 1 + 32000 // 160)
    assert np.abs(mel - goldens["mel"]).max() <= 2e-4


def test_unet_and_cnn_match_reference_on_golden_mel(rmvpe_model: RMVPE, goldens) -> None:
    mel = torch.from_numpy(goldens["mel"])
    with torch.inference_mode():
        image = F.pad(mel, (0, 224 - mel.shape[-1])).transpose(-1, -2).unsqueeze(1)
        unet = rmvpe_model.model.unet(image)
        cnn = rmvpe_model.model.cnn(unet)
    assert np.abs(unet.numpy() - goldens["unet_out"]).max() <= 1e-4
    assert np.abs(cnn.numpy() - goldens["cnn_out"]).max() <= 1e-4


def test_salience_cents_and_f0_match_reference(rmvpe_model: RMVPE, goldens, inputs) -> None:
    hidden = rmvpe_model.salience(inputs["audio"])
    assert hidden.shape == (201, 360) and hidden.dtype == np.float32
    assert np.abs(hidden - goldens["hidden"]).max() <= 1e-5
    np.testing.assert_array_equal(hidden.argmax(axis=1), goldens["hidden"].argmax(axis=1))

    cents = local_average_cents(hidden, threshold=0.03)
    assert np.abs(cents - goldens["cents"]).max() <= 2e-3

    f0 = rmvpe_model.infer_from_audio(inputs["audio"])
    expected = goldens["f0"]
    np.testing.assert_array_equal(f0 > 0, expected > 0)
    assert (expected > 0).sum() == 170
    voiced = expected > 0
    assert np.all(np.abs(f0 - expected)[voiced] <= np.maximum(1e-3, 1e-6 * expected[voiced]))


def test_decoding_is_exact_on_golden_salience(goldens) -> None:
    # float32 weight sum as the reference: bit-identical cents
    np.testing.assert_array_equal(local_average_cents(goldens["hidden"], threshold=0.03), goldens["cents"])


def test_synthetic_salience_edge_cases_decode_as_reference(goldens, inputs) -> None:
    salience = inputs["synthetic_salience"]
    cents = local_average_cents(salience, threshold=0.03)
    np.testing.assert_allclose(cents, goldens["synthetic_cents"], rtol=0, atol=2e-3)
    np.testing.assert_allclose(cents_to_f0(cents), goldens["synthetic_f0"], rtol=0, atol=1e-3)
    thred005 = local_average_cents(salience, threshold=0.05)
    np.testing.assert_allclose(thred005, goldens["synthetic_cents_thred005"], rtol=0, atol=2e-3)
    assert cents[4] == 0 and cents[6] == 0  # at threshold; all zeros (NaN internally)


def test_infer_accepts_float64_and_is_deterministic(rmvpe_model: RMVPE, inputs) -> None:
    audio = inputs["audio"]
    first = rmvpe_model.infer_from_audio(audio.astype(np.float64))
    np.testing.assert_array_equal(first, rmvpe_model.infer_from_audio(audio))
    assert first.dtype == np.float64 and first.shape == (1 + audio.size // 160,)


def _write(path: Path, state: dict[str, torch.Tensor]) -> Path:
    torch.save(state, path)
    return path


def test_loader_names_missing_and_unexpected_keys(rmvpe_tiny: Path, tmp_path: Path) -> None:
    state = torch.load(rmvpe_tiny / "rmvpe.pt", weights_only=True)
    broken = dict(state)
    del broken["cnn.bias"]
    broken["fc.2.weight"] = torch.zeros(1)
    with pytest.raises(AssetError, match=r"cnn\.bias.*fc\.2\.weight"):
        RMVPE.from_pretrained(_write(tmp_path / "keys.pt", broken))


def test_loader_rejects_wrong_shapes_bad_files_and_missing_paths(rmvpe_tiny: Path, tmp_path: Path) -> None:
    state = torch.load(rmvpe_tiny / "rmvpe.pt", weights_only=True)
    state["fc.1.bias"] = torch.zeros(361)
    with pytest.raises(AssetError, match=r"fc\.1\.bias"):
        RMVPE.from_pretrained(_write(tmp_path / "shape.pt", state))
    assert_absent_and_garbage_files_are_asset_errors(RMVPE.from_pretrained, tmp_path, ".pt")
    with pytest.raises(AssetError, match="unet.encoder"):
        RMVPE.from_pretrained(_write(tmp_path / "other.pt", {"weight": torch.zeros(2)}))
