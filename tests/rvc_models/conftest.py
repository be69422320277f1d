"""Fixtures for the RVC model tests: golden folders, the fixture voice and HuBERT, tiny configs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from rvc.infer.hubert import ContentEncoder
from rvc.infer.synthesizer import SynthesizerConfig, VoiceCheckpoint, load_voice_checkpoint, official_config


@pytest.fixture(scope="session")
def synth_dir(shared_fixtures: Path) -> Path:
    return shared_fixtures / "rvc_synth_v2_tiny"


@pytest.fixture(scope="session")
def hubert_dir(shared_fixtures: Path) -> Path:
    return shared_fixtures / "hubert_tiny"


@pytest.fixture(scope="session")
def keys_dir(shared_fixtures: Path) -> Path:
    return shared_fixtures.parent / "reference" / "keys"


@pytest.fixture(scope="session")
def fixture_voice(synth_dir: Path) -> VoiceCheckpoint:
    return load_voice_checkpoint(synth_dir / "tiny_v2_40k.pth")


@pytest.fixture(scope="session")
def synth_inputs(synth_dir: Path) -> dict[str, torch.Tensor]:
    with np.load(synth_dir / "inputs.npz") as data:
        return {key: torch.from_numpy(data[key]) for key in data.files}


@pytest.fixture(scope="session")
def tiny_hubert(hubert_dir: Path) -> ContentEncoder:
    return ContentEncoder.from_fairseq(hubert_dir / "hubert_base.pt")


def tiny_config(version: str, sample_rate: int, *, if_f0: bool) -> SynthesizerConfig:
    """The official upsampling for (version, sample_rate), with every width shrunk."""
    return official_config(version, sample_rate, if_f0=if_f0).replace(
        inter_channels=4,
        hidden_channels=8,
        filter_channels=16,
        n_layers=1,
        upsample_initial_channel=32,
        spk_embed_dim=3,
        gin_channels=4,
    )
