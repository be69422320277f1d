"""HuBERT/ContentVec loading without fairseq, parity with fairseq's features (fixtures/hubert_tiny)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import HubertConfig

from rvc.errors import AssetError, InvalidInput
from rvc.infer.fairseq_hubert import fairseq_to_transformers_key, read_fairseq_checkpoint
from rvc.infer.hubert import ContentEncoder, HubertWithFinalProj, write_transformers_folder
from tests.asset_files import assert_absent_and_garbage_files_are_asset_errors

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def audio(hubert_dir: Path) -> torch.Tensor:
    with np.load(hubert_dir / "inputs.npz") as data:
        return torch.from_numpy(data["audio"]).unsqueeze(0)


@pytest.fixture(scope="module")
def golden(hubert_dir: Path) -> dict[str, np.ndarray]:
    with np.load(hubert_dir / "expected.npz") as data:
        return {key: data[key] for key in data.files}


def _max_diff(ours: torch.Tensor, expected: np.ndarray) -> float:
    assert tuple(ours.shape) == expected.shape
    return float(np.abs(ours.numpy() - expected).max())


def test_fairseq_checkpoint_features_match_fairseq(tiny_hubert: ContentEncoder, audio, golden) -> None:
    assert tiny_hubert.num_layers == 12
    v2 = tiny_hubert.extract(audio, "v2")
    v1 = tiny_hubert.extract(audio, "v1")
    assert v2.shape == (1, 99, 32) and v1.shape == (1, 99, 16)
    assert _max_diff(v2, golden["feats_v2"]) <= TOLERANCE
    assert _max_diff(v1, golden["feats_v1"]) <= TOLERANCE
    assert _max_diff(tiny_hubert.layer_output(audio, 9), golden["layer9"]) <= TOLERANCE


def test_every_layer_and_the_encoder_input_match_fairseq(tiny_hubert: ContentEncoder, audio, golden) -> None:
    assert _max_diff(tiny_hubert.layer_output(audio, 0), golden["encoder_input"]) <= TOLERANCE
    for layer in range(1, 13):
        diff = _max_diff(tiny_hubert.layer_output(audio, layer)[0], golden["layer_outputs"][layer - 1])
        assert diff <= TOLERANCE, f"layer {layer}: {diff:.3g}"


def test_layer_loop_equals_transformers_hidden_states(tiny_hubert: ContentEncoder, audio) -> None:
    with torch.inference_mode():
        outputs = tiny_hubert.model(audio, output_hidden_states=True)
    assert len(outputs.hidden_states) == 13
    for layer in (0, 9, 12):
        torch.testing.assert_close(tiny_hubert.layer_output(audio, layer), outputs.hidden_states[layer])


def test_one_dimensional_audio_is_one_batch(tiny_hubert: ContentEncoder, audio) -> None:
    torch.testing.assert_close(tiny_hubert.extract(audio[0], "v2"), tiny_hubert.extract(audio, "v2"))


def test_audio_shorter_than_one_frame_is_invalid_input(tiny_hubert: ContentEncoder) -> None:
    with pytest.raises(InvalidInput, match="400"):
        tiny_hubert.extract(torch.zeros(1, 399), "v2")
    with pytest.raises(ValueError, match="version"):
        tiny_hubert.extract(torch.zeros(1, 800), "v3")


def test_key_table_is_the_verified_mapping(hubert_dir: Path) -> None:
    table = json.loads((hubert_dir / "hf_mapping_check.json").read_text())["rename_table"]
    assert len(table) == 214
    for fairseq_key, transformers_key in table:
        assert fairseq_to_transformers_key(fairseq_key) == transformers_key


def test_real_size_key_manifests_map_onto_each_other(keys_dir: Path) -> None:
    fairseq_keys = json.loads((keys_dir / "fairseq_hubert_keys.json").read_text())
    hf_keys = json.loads((keys_dir / "hf_hubert_keys.json").read_text())
    mapped = {
        fairseq_to_transformers_key(key): tuple(shape)
        for key, shape in fairseq_keys.items()
        if fairseq_to_transformers_key(key) is not None
    }
    assert mapped == {key: tuple(shape) for key, shape in hf_keys.items()}
    with torch.device("meta"):
        model = HubertWithFinalProj(HubertConfig())
    assert {key: tuple(value.shape) for key, value in model.state_dict().items()} == mapped


def test_transformers_folder_round_trip(hubert_dir: Path, tmp_path: Path, audio, golden) -> None:
    folder = write_transformers_folder(hubert_dir / "hubert_base.pt", tmp_path / "hubert_base")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    encoder = ContentEncoder.from_pretrained(folder)
    assert _max_diff(encoder.extract(audio, "v2"), golden["feats_v2"]) <= TOLERANCE
    assert _max_diff(encoder.extract(audio, "v1"), golden["feats_v1"]) <= TOLERANCE


def test_folder_with_legacy_weight_norm_names_and_bin_weights(
    hubert_dir: Path, tmp_path: Path, audio, golden
) -> None:
    from safetensors.torch import load_file

    folder = write_transformers_folder(hubert_dir / "hubert_base.pt", tmp_path / "legacy")
    state = load_file(folder / "model.safetensors")
    prefix = "encoder.pos_conv_embed.conv."
    state[prefix + "weight_g"] = state.pop(prefix + "parametrizations.weight.original0")
    state[prefix + "weight_v"] = state.pop(prefix + "parametrizations.weight.original1")
    torch.save({f"hubert.{key}" if key != "final_proj.weight" else key: value for key, value in state.items()},
               folder / "pytorch_model.bin")  # fmt: skip
    (folder / "model.safetensors").unlink()
    assert (
        _max_diff(ContentEncoder.from_pretrained(folder).extract(audio, "v2"), golden["feats_v2"])
        <= TOLERANCE
    )


def test_fp16_container_of_the_pipeline_fixture_matches_its_golden(pipeline_tiny: Path) -> None:
    # rvc_pipeline_tiny: 768-wide, 1-layer HuBERT stored in fp16; v2 asks for layer 12 and gets layer 1.
    encoder = ContentEncoder.from_fairseq(pipeline_tiny / "hubert_base.pt")
    assert encoder.num_layers == 1
    with np.load(pipeline_tiny / "expected_rmvpe.npz") as data:
        high_passed, expected = data["hp_audio_16k"], data["hubert_feats"]
    padded = np.pad(high_passed, (16000, 16000), mode="reflect").astype(np.float32)
    features = encoder.extract(torch.from_numpy(padded).unsqueeze(0), "v2")
    assert _max_diff(features[0], expected) <= TOLERANCE


def _fake_fairseq_module(monkeypatch: pytest.MonkeyPatch) -> type:
    """A class pickled as fairseq.data.dictionary.Dictionary, without fairseq."""
    module = types.ModuleType("fairseq.data.dictionary")

    class Dictionary:
        def __init__(self) -> None:
            self.symbols = ["<s>", "<pad>"]

    Dictionary.__module__ = module.__name__
    Dictionary.__qualname__ = "Dictionary"
    module.Dictionary = Dictionary  # type: ignore[attr-defined]
    for name in ("fairseq", "fairseq.data", "fairseq.data.dictionary"):
        monkeypatch.setitem(
            sys.modules, name, module if name.endswith("dictionary") else types.ModuleType(name)
        )
    return Dictionary


def test_legacy_args_container_with_fairseq_objects_loads(
    hubert_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, audio, golden
) -> None:
    state, model_cfg = read_fairseq_checkpoint(hubert_dir / "hubert_base.pt")
    dictionary_class = _fake_fairseq_module(monkeypatch)
    legacy = {
        "args": argparse.Namespace(**model_cfg),
        "model": {key: value.half() for key, value in state.items()},
        "task_state": {"dictionaries": [dictionary_class()]},
        "last_optimizer_state": {"step": 3},
        "extra_state": {"note": "extra top-level keys are ignored"},
    }
    path = tmp_path / "hubert_base.pt"
    torch.save(legacy, path)
    for name in ("fairseq", "fairseq.data", "fairseq.data.dictionary"):
        monkeypatch.delitem(sys.modules, name)  # loading must not need fairseq
    encoder = ContentEncoder.from_fairseq(path)
    assert _max_diff(encoder.extract(audio, "v2"), golden["feats_v2"]) <= 2e-2  # fp16 re-quantised weights


class _RunsCode:
    def __reduce__(self) -> tuple:
        return (os.getcwd, ())


def test_checkpoint_that_would_run_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "payload": _RunsCode()}, path)
    with pytest.raises(AssetError, match="refusing to load global"):
        ContentEncoder.from_fairseq(path)


def test_unknown_and_missing_keys_are_named(hubert_dir: Path, tmp_path: Path) -> None:
    state, model_cfg = read_fairseq_checkpoint(hubert_dir / "hubert_base.pt")
    unknown = dict(state, **{"encoder.adapter.weight": torch.zeros(2)})
    torch.save({"cfg": {"model": model_cfg}, "model": unknown}, tmp_path / "unknown.pt")
    with pytest.raises(AssetError, match=r"encoder\.adapter\.weight"):
        ContentEncoder.from_fairseq(tmp_path / "unknown.pt")
    missing = {key: value for key, value in state.items() if key != "encoder.layers.3.fc1.weight"}
    torch.save({"cfg": {"model": model_cfg}, "model": missing}, tmp_path / "missing.pt")
    with pytest.raises(
        AssetError, match=r"missing keys: encoder\.layers\.3\.feed_forward\.intermediate_dense\.weight"
    ):
        ContentEncoder.from_fairseq(tmp_path / "missing.pt")
    wrong_heads = dict(model_cfg, encoder_embed_dim=48)
    torch.save({"cfg": {"model": wrong_heads}, "model": state}, tmp_path / "shape.pt")
    with pytest.raises(AssetError, match="shape mismatches"):
        ContentEncoder.from_fairseq(tmp_path / "shape.pt")


def test_unreadable_files_raise_asset_error(tmp_path: Path) -> None:
    assert_absent_and_garbage_files_are_asset_errors(ContentEncoder.from_fairseq, tmp_path, ".pt")
    with pytest.raises(AssetError, match="config.json"):
        ContentEncoder.from_pretrained(tmp_path)
