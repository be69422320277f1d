"""BiCodecConfig / AudioTokenizerConfig parsing and validation."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from sparktts.audio_tokenizer import BiCodecTokenizer
from sparktts.config import AudioTokenizerConfig, BiCodecConfig, WaveGeneratorConfig
from sparktts.errors import CheckpointError

from .official_config import OFFICIAL_CONFIG


def test_official_config_values() -> None:
    config = BiCodecConfig.from_dict(OFFICIAL_CONFIG)
    assert config.mel_params.fmax == 8000.0
    assert config.decoder.hop_length == 320
    assert config.speaker_encoder.codebook_size == 4096
    assert config.encoder.sample_ratios == (1, 1)
    assert config.postnet.condition_dim is None


def test_config_is_frozen() -> None:
    config = BiCodecConfig.from_dict(OFFICIAL_CONFIG)
    with pytest.raises(AttributeError):
        config.decoder = None  # type: ignore[misc]


def test_yaml_needs_the_audio_tokenizer_wrapper(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(OFFICIAL_CONFIG["audio_tokenizer"]))
    with pytest.raises(CheckpointError, match="audio_tokenizer"):
        BiCodecConfig.from_yaml(path)


def test_base_config_is_merged_underneath(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(OFFICIAL_CONFIG))
    (tmp_path / "config.yaml").write_text("base_config: base.yaml\naudio_tokenizer:\n  mel_params:\n    num_mels: 128\n")
    assert BiCodecConfig.from_yaml(tmp_path / "config.yaml") == BiCodecConfig.from_dict(OFFICIAL_CONFIG)


@pytest.mark.parametrize(
    ("block", "key", "value", "error", "message"),
    [
        ("decoder", "kernel_sizes", [16, 11, 8, 3], ValueError, "kernel_size 3 with rate 2"),
        ("decoder", "channels", 1000, ValueError, "divisible"),
        ("encoder", "vocos_dim", 0, ValueError, "encoder.vocos_dim"),
        ("prenet", "condition_dim", 512, ValueError, "prenet.condition_dim"),
        ("mel_params", "win_length", 2048, ValueError, "win_length"),
        ("speaker_encoder", "fsq_levels", [4, 1], ValueError, "fsq_levels"),
        ("encoder", "bogus", 1, CheckpointError, "bogus"),
    ],
)
def test_bad_config_value_is_named(block: str, key: str, value, error: type, message: str) -> None:
    raw = copy.deepcopy(OFFICIAL_CONFIG)
    raw["audio_tokenizer"][block][key] = value
    with pytest.raises(error, match=message):
        BiCodecConfig.from_dict(raw)


def test_missing_block_is_named() -> None:
    raw = copy.deepcopy(OFFICIAL_CONFIG)
    del raw["audio_tokenizer"]["postnet"]
    with pytest.raises(CheckpointError, match="postnet"):
        BiCodecConfig.from_dict(raw)


def test_wave_generator_rejects_inexact_upsampling() -> None:
    with pytest.raises(ValueError, match="upsample exactly"):
        WaveGeneratorConfig(input_channel=8, channels=16, rates=(4,), kernel_sizes=(7,))


def test_top_level_config_reads_the_four_inference_keys(spark_tiny: Path) -> None:
    config = AudioTokenizerConfig.from_yaml(spark_tiny / "model" / "config.yaml")
    assert (config.sample_rate, config.ref_segment_duration, config.latent_hop_length) == (16000, 6, 320)
    assert config.volume_normalize is True
    assert config.ref_segment_length == 96000
    assert config.extra["highpass_cutoff_freq"] == 40


def test_float64_model_gives_the_same_tokens(spark_tiny: Path, tokenizer_golden) -> None:
    tokenizer = BiCodecTokenizer.from_pretrained(spark_tiny / "model", dtype=torch.float64)
    assert tokenizer.model.mel_transformer.mel_scale.fb.dtype == torch.float32
    global_tokens, semantic_tokens = tokenizer.tokenize(tokenizer_golden["wav_processed"].astype(np.float32))
    np.testing.assert_array_equal(global_tokens.numpy(), tokenizer_golden["global_tokens"][0])
    np.testing.assert_array_equal(semantic_tokens.numpy(), tokenizer_golden["semantic_tokens"])
    wav = tokenizer.detokenize(global_tokens, semantic_tokens)
    assert wav.dtype == np.float32 and np.isfinite(wav).all()


def test_bfloat16_model_keeps_the_mel_front_end_in_float32_and_decodes(spark_tiny: Path, tokenizer_golden) -> None:
    tokenizer = BiCodecTokenizer.from_pretrained(spark_tiny / "model", dtype=torch.bfloat16)
    model = tokenizer.model
    assert model.mel_transformer.mel_scale.fb.dtype == torch.float32  # CPU FFTs have no bfloat16 kernel
    assert {p.dtype for name, p in model.named_parameters() if not name.startswith("mel_transformer.")} == {
        torch.bfloat16
    }
    global_tokens, semantic_tokens = tokenizer.tokenize(tokenizer_golden["wav_processed"].astype(np.float32))
    assert global_tokens.shape == (1, 32) and semantic_tokens.shape[0] == 1
    wav = tokenizer.detokenize(global_tokens, semantic_tokens)
    assert wav.dtype == np.float32 and np.isfinite(wav).all()
