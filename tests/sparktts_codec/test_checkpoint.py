"""BiCodec checkpoint loading: official layout, weight-norm forms, strict key reporting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from sparktts.bicodec import BiCodec
from sparktts.config import BiCodecConfig
from sparktts.errors import CheckpointError
from sparktts.modules.weight_norm import fold_weight_norm

from .official_config import OFFICIAL_CONFIG


def test_official_config_builds_exactly_the_official_checkpoint_layout(shared_fixtures: Path) -> None:
    manifest = json.loads((shared_fixtures.parent / "reference" / "keys" / "bicodec_keys.json").read_text())
    expected = {key: tuple(shape) for key, shape in manifest["keys"].items()}
    layout = BiCodec.checkpoint_layout(BiCodecConfig.from_dict(OFFICIAL_CONFIG))
    assert sorted(set(layout) - set(expected)) == []
    assert sorted(set(expected) - set(layout)) == []
    assert {k: v for k, v in layout.items() if expected[k] != v} == {}
    assert len(layout) == manifest["num_keys"] == 842


def test_tiny_checkpoint_is_a_subset_of_the_official_layout(bicodec_tiny_dir: Path) -> None:
    from safetensors import safe_open

    with safe_open(str(bicodec_tiny_dir / "model.safetensors"), "pt") as handle:
        stored = {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}
    layout = BiCodec.checkpoint_layout(BiCodecConfig.from_yaml(bicodec_tiny_dir / "config.yaml"))
    assert set(layout) - set(stored) == {"mel_transformer.spectrogram.window", "mel_transformer.mel_scale.fb"}
    assert all(layout[key] == shape for key, shape in stored.items())


def _fold_all(state: dict[str, torch.Tensor]) -> None:
    for g_key in [k for k in state if k.endswith(".weight_g")]:
        prefix = g_key[: -len("_g")]
        v = state.pop(prefix + "_v").float()
        state[prefix] = fold_weight_norm(state.pop(g_key).float(), v)


def test_plain_weight_checkpoint_gives_the_same_output(bicodec_copy, bicodec_tiny, bicodec_expected) -> None:
    folded = BiCodec.from_pretrained(bicodec_copy(_fold_all))
    semantic, glob = bicodec_expected["semantic_tokens"], bicodec_expected["global_tokens"]
    assert torch.equal(folded.detokenize(semantic, glob), bicodec_tiny.detokenize(semantic, glob))


def test_weight_g_is_not_ignored(bicodec_copy, bicodec_tiny, bicodec_expected) -> None:
    def halve_g(state):
        state["decoder.model.6.weight_g"] = state["decoder.model.6.weight_g"] * 0.5

    model = BiCodec.from_pretrained(bicodec_copy(halve_g))
    assert torch.allclose(model.decoder.model[6].weight, bicodec_tiny.decoder.model[6].weight * 0.5)


def test_stored_mel_buffers_are_accepted(bicodec_copy, bicodec_tiny) -> None:
    def add_mel(state):
        state["mel_transformer.spectrogram.window"] = bicodec_tiny.mel_transformer.spectrogram.window.clone()
        state["mel_transformer.mel_scale.fb"] = bicodec_tiny.mel_transformer.mel_scale.fb.clone()

    model = BiCodec.from_pretrained(bicodec_copy(add_mel))
    assert torch.equal(model.mel_transformer.mel_scale.fb, bicodec_tiny.mel_transformer.mel_scale.fb)


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (lambda s: s.pop("prenet.linear.bias"), "prenet.linear.bias"),
        (lambda s: s.pop("postnet.linear.weight"), "postnet.linear.weight"),
        (lambda s: s.pop("speaker_encoder.speaker_encoder.layer1.bn.running_var"),
         "speaker_encoder.speaker_encoder.layer1.bn.running_var"),
        (lambda s: s.update({"decoder.extra.weight": torch.zeros(3)}), "decoder.extra.weight"),
        (lambda s: s.update({"quantizer.codebook.weight": torch.zeros(65, 8)}), "quantizer.codebook.weight"),
        (lambda s: s.pop("decoder.model.0.weight_v"), "decoder.model.0.weight_g"),
        (lambda s: (s.pop("decoder.model.6.weight_g"), s.pop("decoder.model.6.weight_v")), "decoder.model.6.weight"),
    ],
    ids=["missing", "missing-postnet", "missing-buffer", "unexpected", "shape", "half-wn-pair", "missing-wn"],
)
def test_bad_checkpoint_raises_checkpoint_error_naming_the_key(bicodec_copy, edit, named: str) -> None:
    folder = bicodec_copy(edit)
    with pytest.raises(CheckpointError, match=named.replace(".", r"\.")):
        BiCodec.from_pretrained(folder)


def test_vocoder_only_build_skips_the_encoder_half(bicodec_tiny_dir: Path, bicodec_expected) -> None:
    model = BiCodec.from_pretrained(bicodec_tiny_dir, with_encoder=False)
    assert model.encoder is None and model.mel_transformer is None
    assert not hasattr(model.speaker_encoder, "speaker_encoder")
    assert not any(key.startswith(("encoder.", "postnet.")) for key in model.state_dict())
    wav = model.detokenize(bicodec_expected["semantic_tokens"], bicodec_expected["global_tokens"])
    assert (wav - bicodec_expected["wav_out"]).abs().max() <= 1e-4
    with pytest.raises(RuntimeError, match="with_encoder=False"):
        model.encode(torch.zeros(1, 4, 1024))


def test_tokenizer_only_build_skips_prenet_and_decoder(bicodec_tiny_dir: Path) -> None:
    model = BiCodec.from_pretrained(bicodec_tiny_dir, with_decoder=False)
    assert model.prenet is None and model.decoder is None
    assert not any(key.startswith(("prenet.", "decoder.", "postnet.")) for key in model.state_dict())
    with pytest.raises(RuntimeError, match="with_decoder=False"):
        model.detokenize(torch.zeros(1, 3, dtype=torch.long), torch.zeros(1, 1, 32, dtype=torch.long))


def test_random_model_save_load_round_trip(bicodec_tiny_dir: Path, tmp_path: Path) -> None:
    config = BiCodecConfig.from_yaml(bicodec_tiny_dir / "config.yaml")
    torch.manual_seed(0)
    model = BiCodec(config, with_postnet=True).eval()
    folder = model.save_pretrained(tmp_path / "BiCodec")
    reloaded = BiCodec.from_pretrained(folder)
    assert BiCodecConfig.from_yaml(folder / "config.yaml") == config
    feat, wav = torch.randn(1, 12, 1024), torch.randn(1, 16000) * 0.1
    semantic, glob = model.tokenize(feat, wav)
    assert torch.equal(semantic, reloaded.tokenize(feat, wav)[0])
    assert torch.equal(glob, reloaded.tokenize(feat, wav)[1])
    assert len(set(glob.flatten().tolist())) > 1  # random latents: the 32 tokens are not all alike
    out, out_reloaded = model.detokenize(semantic, glob), reloaded.detokenize(semantic, glob)
    assert out.shape == (1, 1, 12 * 320)
    assert (out - out_reloaded).abs().max() <= 1e-5


def test_partial_model_cannot_be_saved(bicodec_tiny: BiCodec, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="full model"):
        bicodec_tiny.save_pretrained(tmp_path)


def test_corrupt_weights_file_raises_checkpoint_error(bicodec_tiny_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text((bicodec_tiny_dir / "config.yaml").read_text())
    (tmp_path / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="cannot read"):
        BiCodec.from_pretrained(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="not found"):
        BiCodec.from_pretrained(tmp_path)
