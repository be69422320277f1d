"""Models built from the official configs have exactly the reference's checkpoint keys and shapes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from rvc.infer.synthesizer import Synthesizer, SynthesizerConfig, official_config

VARIANTS = {
    "v1_f0_40k": ("v1", 40000, True),
    "v2_nof0_40k": ("v2", 40000, False),
    "v1_nof0_40k": ("v1", 40000, False),
    "v2_f0_48k": ("v2", 48000, True),
    "v2_f0_32k": ("v2", 32000, True),
    "v1_f0_48k": ("v1", 48000, True),
    "v1_f0_32k": ("v1", 32000, True),
}


def _layout(config: SynthesizerConfig) -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):
        return Synthesizer(config).checkpoint_layout()


@pytest.fixture(scope="module")
def v2_manifest(keys_dir: Path) -> dict:
    return json.loads((keys_dir / "synth_v2_40k_keys.json").read_text())


def test_official_v2_40k_config_list_matches_reference(v2_manifest: dict) -> None:
    assert official_config("v2", 40000).to_checkpoint_list() == v2_manifest["config"]


def test_v2_f0_40k_has_exactly_the_reference_inference_keys(v2_manifest: dict) -> None:
    layout = _layout(official_config("v2", 40000))
    expected = {key: tuple(shape) for key, shape in v2_manifest["inference_keys"].items()}
    assert layout == expected
    assert len(layout) == v2_manifest["n_keys_inference"] == 457
    n_params = sum(torch.Size(shape).numel() for shape in layout.values())
    assert n_params == v2_manifest["n_params_inference"] == 27_537_346


def test_dropped_enc_q_keys_are_not_part_of_the_model(v2_manifest: dict) -> None:
    layout = _layout(official_config("v2", 40000))
    assert not any(key.startswith("enc_q.") for key in layout)
    assert all(key.startswith("enc_q.") for key in v2_manifest["enc_q_keys_dropped_in_saved_pth"])


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_variant_keys_follow_the_reference_diff(variant: str, keys_dir: Path, v2_manifest: dict) -> None:
    diff = json.loads((keys_dir / "synth_variants_diff.json").read_text())[variant]
    expected = {key: tuple(shape) for key, shape in v2_manifest["inference_keys"].items()}
    for key in diff["missing_vs_v2_f0_40k"]:
        del expected[key]
    expected.update({key: tuple(shape) for key, shape in diff["only_in_this"].items()})
    expected.update({key: tuple(shapes[1]) for key, shapes in diff["shape_diff"].items()})

    version, sample_rate, if_f0 = VARIANTS[variant]
    layout = _layout(official_config(version, sample_rate, if_f0=if_f0))
    assert len(layout) == diff["n_keys"]
    assert layout == expected
