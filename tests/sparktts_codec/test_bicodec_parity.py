"""BiCodec loaded through from_pretrained reproduces the official bicodec_tiny goldens."""

from __future__ import annotations

import pytest
import torch

from sparktts.bicodec import BiCodec


def _max_diff(actual: torch.Tensor, expected: torch.Tensor) -> float:
    assert actual.shape == expected.shape
    return (actual.float() - expected.float()).abs().max().item()


def test_mel_buffers_equal_the_official_window_and_filterbank(bicodec_tiny: BiCodec, bicodec_expected) -> None:
    mel = bicodec_tiny.mel_transformer
    assert _max_diff(mel.spectrogram.window, bicodec_expected["mel_window"]) == 0.0
    assert _max_diff(mel.mel_scale.fb, bicodec_expected["mel_fb"]) <= 1e-7


def test_mel_matches_torchaudio_golden(bicodec_tiny: BiCodec, bicodec_inputs, bicodec_expected) -> None:
    mel = bicodec_tiny.mel(bicodec_inputs["wav"])
    assert mel.dtype == torch.float32
    assert _max_diff(mel, bicodec_expected["mel"]) <= 1e-5


@torch.inference_mode()
def test_every_intermediate_matches_golden(bicodec_tiny: BiCodec, bicodec_inputs, bicodec_expected) -> None:
    exp = bicodec_expected
    mel = bicodec_tiny.mel(bicodec_inputs["wav"])
    z = bicodec_tiny.encode(bicodec_inputs["feat"])
    x_vector, latent = bicodec_tiny.speaker_encoder.speaker_encoder(mel.transpose(1, 2))
    perceiver = bicodec_tiny.speaker_encoder.perceiver_latents(mel.transpose(1, 2))
    fsq_zq, fsq_indices = bicodec_tiny.speaker_encoder.quantizer(perceiver)
    prenet = bicodec_tiny.prenet(exp["vq_z_q"], exp["d_vector"])
    diffs = {
        "enc_z": _max_diff(z, exp["enc_z"]),
        "vq_z_e": _max_diff(bicodec_tiny.quantizer.project_in(z), exp["vq_z_e"]),
        "vq_z_q": _max_diff(bicodec_tiny.quantizer.detokenize(exp["semantic_tokens"]), exp["vq_z_q"]),
        "ecapa_latent": _max_diff(latent, exp["ecapa_latent"]),
        "x_vector": _max_diff(x_vector, exp["x_vector"]),
        "perceiver_out": _max_diff(perceiver, exp["perceiver_out"]),
        "fsq_zq": _max_diff(fsq_zq, exp["fsq_zq"]),
        "d_vector": _max_diff(bicodec_tiny.d_vector(exp["global_tokens"]), exp["d_vector"]),
        "prenet_out": _max_diff(prenet, exp["prenet_out"]),
        "decoder_in": _max_diff(prenet + exp["d_vector"][:, :, None], exp["decoder_in"]),
    }
    assert all(value <= 1e-4 for value in diffs.values()), diffs
    assert torch.equal(fsq_indices, exp["global_tokens"])


def test_tokens_are_exact(bicodec_tiny: BiCodec, bicodec_inputs, bicodec_expected) -> None:
    semantic, global_tokens = bicodec_tiny.tokenize(bicodec_inputs["feat"], bicodec_inputs["wav"])
    assert semantic.dtype == torch.int64 and semantic.shape == (1, 100)
    assert global_tokens.dtype == torch.int32 and global_tokens.shape == (1, 1, 32)
    assert torch.equal(semantic, bicodec_expected["semantic_tokens"])
    assert torch.equal(global_tokens, bicodec_expected["global_tokens"])


def test_detokenize_waveform_within_1e4(bicodec_tiny: BiCodec, bicodec_expected) -> None:
    wav = bicodec_tiny.detokenize(bicodec_expected["semantic_tokens"], bicodec_expected["global_tokens"])
    assert wav.shape == (1, 1, 32000) and wav.dtype == torch.float32
    assert _max_diff(wav, bicodec_expected["wav_out"]) <= 1e-4


@pytest.mark.parametrize("frames", [1, 7])
def test_each_semantic_token_gives_320_samples(bicodec_tiny: BiCodec, bicodec_expected, frames: int) -> None:
    semantic = bicodec_expected["semantic_tokens"][:, :frames]
    wav = bicodec_tiny.detokenize(semantic, bicodec_expected["global_tokens"])
    assert bicodec_tiny.hop_length == 320
    assert wav.shape == (1, 1, 320 * frames)
    assert torch.isfinite(wav).all() and wav.abs().max() <= 1.0


def test_batched_detokenize_equals_single(bicodec_tiny: BiCodec, bicodec_expected) -> None:
    semantic = bicodec_expected["semantic_tokens"][:, :20]
    glob = bicodec_expected["global_tokens"]
    batch = bicodec_tiny.detokenize(torch.cat([semantic, semantic.flip(1)]), torch.cat([glob, glob]))
    single = bicodec_tiny.detokenize(semantic.flip(1), glob)
    assert _max_diff(batch[1:], single) <= 1e-5
