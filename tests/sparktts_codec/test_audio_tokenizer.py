"""BiCodecTokenizer on the spark_tts_tiny folder: wav2vec2 mix, tokens, detokenize contract, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import Wav2Vec2Config, Wav2Vec2Model

from sparktts.audio_tokenizer import BiCodecTokenizer
from sparktts.errors import CheckpointError
from sparktts.wav2vec2_features import MIX_LAYERS, Wav2Vec2LayerMix, normalize_wav2vec2_input

CASES = ["b1_clone_prompt_text", "b2_clone_no_prompt_text", "b3_control", "b4_clone_prompt_text_greedy"]


@pytest.fixture(scope="module")
def prepared(tokenizer_golden) -> np.ndarray:
    return tokenizer_golden["wav_processed"].astype(np.float32)


def test_wav2vec2_input_normalisation_matches_feature_extractor(tokenizer_golden) -> None:
    values = normalize_wav2vec2_input(tokenizer_golden["wav_processed"])
    assert values.dtype == np.float32
    assert np.abs(values - tokenizer_golden["w2v_input_values"][0]).max() <= 1e-5


def test_wav2vec2_runs_no_layer_past_16(tokenizer) -> None:
    assert len(tokenizer.wav2vec2.model.encoder.layers) == max(MIX_LAYERS) == 16
    assert tokenizer.wav2vec2.final_norm_on_last is False  # the fixture has 17 layers, the real model 24


def test_wav2vec2_raw_layer_outputs_and_mix_match_golden(tokenizer, prepared, tokenizer_golden) -> None:
    outputs = tokenizer.wav2vec2.layer_outputs(tokenizer.wav2vec2.prepare(prepared))
    for layer in MIX_LAYERS:
        assert np.abs(outputs[layer].numpy() - tokenizer_golden[f"w2v_hidden_{layer}"]).max() <= 1e-4
    mix = tokenizer.wav2vec2(tokenizer.wav2vec2.prepare(prepared))
    assert mix.shape == (1, 174, 96)
    assert np.abs(mix.numpy() - tokenizer_golden["feat_mix"]).max() <= 1e-4


@torch.inference_mode()
def test_tokenizer_path_intermediates_match_golden(tokenizer, tokenizer_golden) -> None:
    model, gold = tokenizer.model, tokenizer_golden
    mel = model.mel(torch.from_numpy(gold["ref_clip"]))
    assert np.abs(mel.numpy() - gold["ref_mel"]).max() <= 1e-5
    perceiver = model.speaker_encoder.perceiver_latents(mel.transpose(1, 2))
    project_in = model.speaker_encoder.quantizer.project_in(perceiver.transpose(1, 2))
    z = model.encode(torch.from_numpy(gold["feat_mix"]))
    diffs = {
        "spk_perceiver_out": np.abs(perceiver.numpy() - gold["spk_perceiver_out"]).max(),
        "spk_fsq_project_in": np.abs(project_in.numpy() - gold["spk_fsq_project_in"]).max(),
        "d_vector": np.abs(model.d_vector(torch.from_numpy(gold["global_tokens"])).numpy() - gold["d_vector"]).max(),
        "enc_z": np.abs(z.numpy() - gold["enc_z"]).max(),
        "vq_z_e": np.abs(model.quantizer.project_in(z).numpy() - gold["vq_z_e"]).max(),
    }
    assert all(value <= 1e-4 for value in diffs.values()), diffs


def test_tokenize_gives_the_official_tokens(tokenizer, prepared, tokenizer_golden) -> None:
    global_tokens, semantic_tokens = tokenizer.tokenize(prepared)
    assert global_tokens.shape == (1, 32) and global_tokens.dtype == torch.int64
    assert semantic_tokens.shape == (1, 174) and semantic_tokens.dtype == torch.int64
    np.testing.assert_array_equal(global_tokens.numpy(), tokenizer_golden["global_tokens"][0])
    np.testing.assert_array_equal(semantic_tokens.numpy(), tokenizer_golden["semantic_tokens"])


def test_tokenize_batch_equals_one_by_one(tokenizer, prepared) -> None:
    wavs = [prepared, prepared[:20000], prepared[::-1].copy(), prepared[:20000] * 0.5]
    batch = tokenizer.tokenize_batch(wavs)
    assert [s.shape[1] for _, s in batch] == [174, 62, 174, 62]
    for wav, (global_tokens, semantic_tokens) in zip(wavs, batch, strict=True):
        single_global, single_semantic = tokenizer.tokenize(wav)
        assert torch.equal(global_tokens, single_global)
        assert torch.equal(semantic_tokens, single_semantic)
    assert tokenizer.tokenize_batch([]) == []


@pytest.mark.parametrize("case", CASES)
def test_detokenize_reproduces_official_inference_waveforms(tokenizer, spark_tiny: Path, case: str) -> None:
    with np.load(spark_tiny / "expected" / f"{case}.npz") as data:
        global_ids, semantic_ids, expected = data["global_ids"], data["semantic_ids"], data["wav"]
    wav = tokenizer.detokenize(torch.from_numpy(global_ids), torch.from_numpy(semantic_ids))
    assert wav.dtype == np.float32 and wav.shape == (1, 320 * semantic_ids.shape[1])
    assert np.abs(wav[0] - expected).max() <= 1e-4


def test_detokenize_shape_contract(tokenizer, tokenizer_golden) -> None:
    glob = torch.from_numpy(tokenizer_golden["global_tokens"][0, 0])  # (32,) int32
    semantic = torch.from_numpy(tokenizer_golden["semantic_tokens"][0, :10])
    one = tokenizer.detokenize(glob, semantic)
    assert one.shape == (3200,) and one.dtype == np.float32
    two = tokenizer.detokenize(torch.stack([glob, glob]), torch.stack([semantic, semantic.flip(0)]))
    assert two.shape == (2, 3200)
    np.testing.assert_allclose(two[0], one, atol=1e-6)


@pytest.mark.parametrize(
    ("global_tokens", "semantic_tokens", "message"),
    [
        (torch.zeros(32, dtype=torch.long), torch.zeros(0, dtype=torch.long), "T >= 1"),
        (torch.zeros(31, dtype=torch.long), torch.zeros(5, dtype=torch.long), r"\(B, 32\)"),
        (torch.zeros(32, dtype=torch.long), torch.full((5,), 64), r"\[0, 64\)"),
        (torch.full((32,), 4096), torch.zeros(5, dtype=torch.long), r"\[0, 4096\)"),
        (torch.zeros(2, 32, dtype=torch.long), torch.zeros(3, 5, dtype=torch.long), "batch sizes differ"),
        (torch.zeros(32, dtype=torch.long), torch.zeros(5), "integers"),
    ],
    ids=["empty", "global-count", "semantic-range", "global-range", "batch", "float"],
)
def test_bad_tokens_raise_value_error(tokenizer, global_tokens, semantic_tokens, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tokenizer.detokenize(global_tokens, semantic_tokens)


@pytest.mark.parametrize(
    ("wav", "message"),
    [
        (np.zeros(0, np.float32), "0 samples"),
        (np.zeros(399, np.float32), "at least 400"),
        (np.full(1000, np.nan, np.float32), "NaN"),
        (np.zeros((2, 1000), np.float32), "1-D"),
    ],
    ids=["empty", "too-short", "nan", "2-d"],
)
def test_bad_wav_for_tokenize_raises_value_error(tokenizer, wav: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tokenizer.tokenize(wav)


def test_vocoder_only_tokenizer_skips_wav2vec2(spark_tiny: Path, tokenizer_golden) -> None:
    vocoder = BiCodecTokenizer.from_pretrained(spark_tiny / "model", with_encoder=False)
    assert vocoder.wav2vec2 is None and vocoder.model.encoder is None
    wav = vocoder.detokenize(torch.from_numpy(tokenizer_golden["global_tokens"][0]),
                             torch.from_numpy(tokenizer_golden["semantic_tokens"]))
    assert wav.shape == (1, 174 * 320)
    with pytest.raises(RuntimeError, match="with_encoder=False"):
        vocoder.tokenize(np.zeros(16000, np.float32))


def test_tokenizer_only_skips_the_decoder(spark_tiny: Path, tokenizer_golden) -> None:
    encoder_only = BiCodecTokenizer.from_pretrained(spark_tiny / "model", with_decoder=False)
    assert encoder_only.model.decoder is None and encoder_only.model.prenet is None
    _, semantic = encoder_only.tokenize(tokenizer_golden["wav_processed"].astype(np.float32))
    np.testing.assert_array_equal(semantic.numpy(), tokenizer_golden["semantic_tokens"])
    with pytest.raises(RuntimeError, match="with_decoder=False"):
        encoder_only.detokenize(torch.zeros(32, dtype=torch.long), torch.zeros(3, dtype=torch.long))


def test_xlsr53_config_builds_the_official_wav2vec2_layout(shared_fixtures: Path, spark_tiny: Path) -> None:
    manifest = json.loads((shared_fixtures.parent / "reference" / "keys" / "w2v_keys.json").read_text())
    tiny = Wav2Vec2Config.from_pretrained(spark_tiny / "model" / "wav2vec2-large-xlsr-53")
    full = Wav2Vec2Config(**{**tiny.to_dict(), "hidden_size": 1024, "num_hidden_layers": 24,
                             "num_attention_heads": 16, "intermediate_size": 4096, "conv_dim": [512] * 7})
    with torch.device("meta"):
        layout = {key: list(t.shape) for key, t in Wav2Vec2Model(full).state_dict().items()}
    assert layout == manifest["keys"]


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (lambda s: s.pop("wav2vec2.encoder.layers.3.attention.q_proj.weight"), "encoder.layers.3.attention.q_proj"),
        (lambda s: s.update({"wav2vec2.encoder.bogus.weight": torch.zeros(2)}), "encoder.bogus.weight"),
    ],
    ids=["missing", "unexpected"],
)
def test_bad_wav2vec2_checkpoint_raises_checkpoint_error(spark_tiny: Path, tmp_path: Path, edit, named: str) -> None:
    source = spark_tiny / "model" / "wav2vec2-large-xlsr-53"
    for name in ("config.json", "preprocessor_config.json"):
        shutil.copy(source / name, tmp_path / name)
    state = torch.load(source / "pytorch_model.bin", weights_only=True)
    edit(state)
    torch.save(state, tmp_path / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match=named.replace(".", r"\.")):
        Wav2Vec2LayerMix.from_pretrained(tmp_path)


def test_unused_pretraining_heads_and_late_layers_are_accepted(tokenizer) -> None:
    # the fixture holds quantizer/project_q/project_hid heads and a 17th layer; all are skipped
    assert not any(".16." in key for key in tokenizer.wav2vec2.state_dict())
