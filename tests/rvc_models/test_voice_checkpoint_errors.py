"""A bad voice checkpoint fails with an AssetError that names what is wrong; configs validate."""

from __future__ import annotations

import pickle
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from rvc.errors import AssetError, InvalidInput
from rvc.infer.synthesizer import SynthesizerConfig, VoiceCheckpoint, load_voice_checkpoint
from tests.asset_files import assert_absent_and_garbage_files_are_asset_errors


@pytest.fixture
def checkpoint(synth_dir: Path) -> OrderedDict:
    return torch.load(synth_dir / "tiny_v2_40k.pth", weights_only=True)


def _saved(checkpoint: dict, tmp_path: Path) -> Path:
    path = tmp_path / "voice.pth"
    torch.save(checkpoint, path)
    return path


def test_missing_key_is_named(checkpoint: OrderedDict, tmp_path: Path) -> None:
    del checkpoint["weight"]["dec.ups.1.weight_g"]
    with pytest.raises(AssetError, match=r"missing keys: dec\.ups\.1\.weight_g"):
        load_voice_checkpoint(_saved(checkpoint, tmp_path))


def test_unexpected_key_is_named(checkpoint: OrderedDict, tmp_path: Path) -> None:
    checkpoint["weight"]["dec.extra.weight"] = torch.zeros(3, dtype=torch.float16)
    with pytest.raises(AssetError, match=r"unexpected keys: dec\.extra\.weight"):
        load_voice_checkpoint(_saved(checkpoint, tmp_path))


def test_wrong_version_shows_as_a_named_shape_mismatch(checkpoint: OrderedDict, tmp_path: Path) -> None:
    checkpoint["version"] = "v1"  # 768-wide weights declared as a 256-wide v1 voice
    with pytest.raises(AssetError, match=r"enc_p\.emb_phone\.weight \(16, 768\) != \(16, 256\)"):
        load_voice_checkpoint(_saved(checkpoint, tmp_path))


def test_f0_flag_mismatch_names_the_pitch_keys(checkpoint: OrderedDict, tmp_path: Path) -> None:
    checkpoint["f0"] = 0
    with pytest.raises(AssetError, match=r"unexpected keys: .*enc_p\.emb_pitch\.weight"):
        load_voice_checkpoint(_saved(checkpoint, tmp_path))


def test_non_finite_weights_are_refused(checkpoint: OrderedDict, tmp_path: Path) -> None:
    checkpoint["weight"]["flow.flows.2.pre.bias"][0] = float("nan")
    with pytest.raises(AssetError, match=r"non-finite .*flow\.flows\.2\.pre\.bias"):
        load_voice_checkpoint(_saved(checkpoint, tmp_path))


def test_bad_config_and_container_are_asset_errors(checkpoint: OrderedDict, tmp_path: Path) -> None:
    broken = OrderedDict(checkpoint, config=checkpoint["config"][:17])
    with pytest.raises(AssetError, match="18 entries"):
        load_voice_checkpoint(_saved(broken, tmp_path))
    broken = OrderedDict(checkpoint, config=[*checkpoint["config"][:9], "3", *checkpoint["config"][10:]])
    with pytest.raises(AssetError, match="resblock"):
        load_voice_checkpoint(_saved(broken, tmp_path))
    without_weight = OrderedDict((k, v) for k, v in checkpoint.items() if k != "weight")
    with pytest.raises(AssetError, match=r"lacks \['weight'\]"):
        load_voice_checkpoint(_saved(without_weight, tmp_path))
    with pytest.raises(AssetError, match="holds a list"):
        load_voice_checkpoint(_saved([1, 2], tmp_path))


def test_unreadable_or_absent_files_are_asset_errors(tmp_path: Path) -> None:
    assert_absent_and_garbage_files_are_asset_errors(load_voice_checkpoint, tmp_path, ".pth")
    with (tmp_path / "object.pth").open("wb") as file:
        pickle.dump({"weight": {}, "config": [], "x": Path("/")}, file, protocol=2)
    with pytest.raises(AssetError, match="cannot be read"):
        load_voice_checkpoint(tmp_path / "object.pth")


def test_reference_loader_tolerances_are_kept(checkpoint: OrderedDict, tmp_path: Path, synth_inputs) -> None:
    """enc_q keys are skipped, parametrization names accepted, config[15] replaced by emb_g rows."""
    weight = checkpoint["weight"]
    weight["enc_q.pre.weight"] = torch.zeros(1, dtype=torch.float16)
    weight["dec.ups.0.parametrizations.weight.original0"] = weight.pop("dec.ups.0.weight_g")
    weight["dec.ups.0.parametrizations.weight.original1"] = weight.pop("dec.ups.0.weight_v")
    checkpoint["config"][15] = 109
    voice = load_voice_checkpoint(_saved(checkpoint, tmp_path))
    assert voice.config.spk_embed_dim == 2
    args = [synth_inputs[k] for k in ("phone", "phone_lengths", "pitch", "nsff0", "sid")]
    assert voice.model.infer(*args, deterministic=True).shape == (1, 1, 20000)


def test_old_v1_file_without_version_defaults_to_v1(checkpoint: OrderedDict, tmp_path: Path) -> None:
    del checkpoint["version"]
    checkpoint["weight"]["enc_p.emb_phone.weight"] = torch.zeros(16, 256, dtype=torch.float16)
    assert load_voice_checkpoint(_saved(checkpoint, tmp_path)).version == "v1"


def test_out_of_range_speaker_is_invalid_input(fixture_voice: VoiceCheckpoint, synth_inputs) -> None:
    args = [synth_inputs[k] for k in ("phone", "phone_lengths", "pitch", "nsff0")]
    with pytest.raises(InvalidInput, match="speaker id") as error:
        fixture_voice.model.infer(*args, torch.tensor([2]))
    assert error.value.field == "speaker_id"


def test_missing_pitch_for_an_f0_voice_is_a_value_error(fixture_voice: VoiceCheckpoint, synth_inputs) -> None:
    with pytest.raises(ValueError, match="pitch"):
        fixture_voice.model.infer(
            synth_inputs["phone"], synth_inputs["phone_lengths"], None, None, synth_inputs["sid"]
        )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"hidden_channels": 15}, "not divisible by n_heads"),
        ({"inter_channels": 5}, "inter_channels must be even"),
        ({"version": "v3"}, "version"),
        ({"upsample_kernel_sizes": (16, 15, 4, 4)}, "kernel - rate must be even"),
        ({"upsample_initial_channel": 24}, "divisible by 2\\*\\*4"),
        ({"resblock_dilation_sizes": ((1, 3), (1, 3), (1, 3))}, "needs 3 dilations"),
        ({"sample_rate": 0}, "sample_rate must be a positive int"),
        ({"p_dropout": 1.5}, "p_dropout"),
        ({"upsample_rates": (10, 2, 2, 5), "upsample_kernel_sizes": (16, 4, 4, 5)}, "even strides"),
    ],
)
def test_config_validation_names_the_bad_value(
    fixture_voice: VoiceCheckpoint, change: dict, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        fixture_voice.config.replace(**change)


def test_config_list_round_trip_and_sample_rate_names(fixture_voice: VoiceCheckpoint) -> None:
    config = fixture_voice.config
    values = config.to_checkpoint_list()
    assert SynthesizerConfig.from_checkpoint_list(values, version="v2", if_f0=True) == config
    values[17] = "40k"
    assert SynthesizerConfig.from_checkpoint_list(values, version="v2", if_f0=True) == config
