"""Fixtures for the BiCodec / audio-tokenizer tests: golden folders and models loaded once per session."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from sparktts.audio_tokenizer import BiCodecTokenizer
from sparktts.bicodec import BiCodec


@pytest.fixture(scope="session")
def bicodec_tiny_dir(shared_fixtures: Path) -> Path:
    return shared_fixtures / "bicodec_tiny"


@pytest.fixture(scope="session")
def bicodec_tiny(bicodec_tiny_dir: Path) -> BiCodec:
    return BiCodec.from_pretrained(bicodec_tiny_dir)


@pytest.fixture(scope="session")
def bicodec_inputs(bicodec_tiny_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(bicodec_tiny_dir / "inputs.safetensors"))


@pytest.fixture(scope="session")
def bicodec_expected(bicodec_tiny_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(bicodec_tiny_dir / "expected.safetensors"))


@pytest.fixture(scope="session")
def tokenizer(spark_tiny: Path) -> BiCodecTokenizer:
    return BiCodecTokenizer.from_pretrained(spark_tiny / "model")


@pytest.fixture()
def bicodec_copy(bicodec_tiny_dir: Path, tmp_path: Path):
    """Write a BiCodec folder holding an edited copy of bicodec_tiny's state dict; returns a writer."""

    def write(edit) -> Path:
        state = load_file(str(bicodec_tiny_dir / "model.safetensors"))
        edit(state)
        folder = tmp_path / "BiCodec"
        folder.mkdir(exist_ok=True)
        shutil.copy(bicodec_tiny_dir / "config.yaml", folder / "config.yaml")
        save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "model.safetensors"))
        return folder

    return write
