"""Our torch wav2vec2 against transformers' ``Wav2Vec2Model``: same outputs, same checkpoints, same refusals.

transformers is imported here only as the reference; the service's code path must not import it
(tests/triton/test_adapter_imports.py checks that in a fresh interpreter).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from transformers import Wav2Vec2Config as HFWav2Vec2Config
from transformers import Wav2Vec2Model as HFWav2Vec2Model

from sparktts.demo import write_demo_model
from sparktts.errors import CheckpointError
from sparktts.wav2vec2_features import MIX_LAYERS, Wav2Vec2LayerMix
from sparktts.wav2vec2_model import Wav2Vec2Config, Wav2Vec2Model
from tests.fresh_interpreter import loaded_after

W2V_DIR = "wav2vec2-large-xlsr-53"
TOLERANCE = 1e-5  # float32; transformers and this port run the same kernels, so the gap is ~0


@pytest.fixture(scope="module")
def demo_w2v(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_demo_model(tmp_path_factory.mktemp("w2v_demo"), seed=3) / W2V_DIR


@pytest.fixture(scope="module")
def fixture_w2v(spark_tiny: Path) -> Path:
    return spark_tiny / "model" / W2V_DIR


@pytest.fixture(scope="module")
def speech_like() -> torch.Tensor:
    """(2, 12000) float32: two 0.75 s rows, so batching is covered too."""
    generator = torch.Generator().manual_seed(5)
    t = torch.arange(12000) / 16000
    tone = torch.sin(2 * torch.pi * 150 * t) + 0.3 * torch.sin(2 * torch.pi * 450 * t)
    return torch.stack([tone, torch.randn(12000, generator=generator)]).float()


def _reference(folder: Path) -> HFWav2Vec2Model:
    return HFWav2Vec2Model.from_pretrained(folder).eval()  # type: ignore[return-value]


def _max_gaps(ours: Wav2Vec2Model, reference: HFWav2Vec2Model, input_values: torch.Tensor) -> dict[str, float]:
    """Largest |ours - transformers| per output: every hidden state but the last, and last_hidden_state.

    The last ``hidden_states`` entry is left out: transformers 4.46 applies the final norm to it,
    5.x does not; ``last_hidden_state`` pins the last layer either way.
    """
    with torch.inference_mode():
        expected = reference(input_values, output_hidden_states=True)
        states = ours.hidden_states(input_values)
        last = ours(input_values)
    assert len(states) == len(expected.hidden_states)
    gaps = {f"hidden_states[{i}]": (a - b).abs().max().item()
            for i, (a, b) in enumerate(zip(states[:-1], expected.hidden_states[:-1], strict=True))}
    gaps["last_hidden_state"] = (last - expected.last_hidden_state).abs().max().item()
    return gaps


@pytest.mark.parametrize("folder", ["demo_w2v", "fixture_w2v"])
def test_every_layer_matches_transformers(folder: str, request: pytest.FixtureRequest,
                                          speech_like: torch.Tensor) -> None:
    path: Path = request.getfixturevalue(folder)
    gaps = _max_gaps(Wav2Vec2Model.from_pretrained(path), _reference(path), speech_like)
    assert max(gaps.values()) <= TOLERANCE, gaps


def test_layer_mix_matches_transformers_hidden_states(fixture_w2v: Path, tokenizer_golden) -> None:
    mix = Wav2Vec2LayerMix.from_pretrained(fixture_w2v)
    input_values = mix.prepare(tokenizer_golden["wav_processed"])
    with torch.inference_mode():
        hidden = _reference(fixture_w2v)(input_values, output_hidden_states=True).hidden_states
    expected = sum(hidden[layer] for layer in MIX_LAYERS) / 3
    assert (mix(input_values) - expected).abs().max().item() <= TOLERANCE


def _random_reference(tmp_path: Path, **overrides) -> HFWav2Vec2Model:
    """A random transformers wav2vec2 with perturbed norms and biases, saved to ``tmp_path`` as
    transformers 5 saves it (model.safetensors, ``parametrizations.weight.original0/1``)."""
    config = HFWav2Vec2Config(**{
        "hidden_size": 32, "num_hidden_layers": 3, "num_attention_heads": 4, "intermediate_size": 48,
        "conv_dim": [16] * 7, "do_stable_layer_norm": True, "feat_extract_norm": "layer", "conv_bias": True,
        "num_conv_pos_embeddings": 16, "num_conv_pos_embedding_groups": 4, **overrides})
    torch.manual_seed(11)
    model = HFWav2Vec2Model(config).eval()
    generator = torch.Generator().manual_seed(12)
    with torch.no_grad():
        for name, tensor in model.named_parameters():
            if name.endswith("bias") or "norm" in name:  # off the 0 / 1 init, or a mixed-up norm would pass
                tensor.add_(0.1 * torch.randn(tensor.shape, generator=generator))
    model.save_pretrained(tmp_path)
    return model


@pytest.mark.parametrize(
    "overrides",
    [{}, {"feat_extract_norm": "group", "conv_bias": False}, {"num_conv_pos_embeddings": 15}],
    ids=["layer-norm-convs", "group-norm-convs-no-bias", "odd-pos-kernel"],
)
def test_transformers_5_checkpoints_load_and_match(tmp_path: Path, speech_like: torch.Tensor, overrides) -> None:
    reference = _random_reference(tmp_path, **overrides)
    assert (tmp_path / "model.safetensors").is_file()
    gaps = _max_gaps(Wav2Vec2Model.from_pretrained(tmp_path), reference, speech_like)
    assert max(gaps.values()) <= TOLERANCE, gaps


def test_sixteen_layer_checkpoint_norms_the_last_mixed_layer(tmp_path: Path, speech_like: torch.Tensor) -> None:
    # The reference (transformers 4.46) reads hidden_states[16] of a 16-layer model after the final norm.
    reference = _random_reference(tmp_path, num_hidden_layers=16)
    mix = Wav2Vec2LayerMix.from_pretrained(tmp_path)
    assert mix.final_norm_on_last
    with torch.inference_mode():
        outputs = mix.layer_outputs(speech_like)
        expected = reference(speech_like).last_hidden_state
    assert (outputs[16] - expected).abs().max().item() <= TOLERANCE


def test_truncated_load_equals_the_first_layers_of_the_full_model(fixture_w2v: Path, speech_like: torch.Tensor) -> None:
    full = Wav2Vec2Model.from_pretrained(fixture_w2v)
    truncated = Wav2Vec2Model.from_pretrained(fixture_w2v, num_layers=16)
    assert len(truncated.encoder.layers) == 16 and not any(".16." in key for key in truncated.state_dict())
    with torch.inference_mode():
        assert torch.equal(truncated.hidden_states(speech_like)[16], full.hidden_states(speech_like)[16])


def test_module_tree_has_the_official_key_names(shared_fixtures: Path, fixture_w2v: Path) -> None:
    manifest = json.loads((shared_fixtures.parent / "reference" / "keys" / "w2v_keys.json").read_text())["keys"]
    tiny = Wav2Vec2Config.from_pretrained(fixture_w2v)
    full = Wav2Vec2Config(**{**tiny.__dict__, "hidden_size": 1024, "num_hidden_layers": 24,
                             "num_attention_heads": 16, "intermediate_size": 4096, "conv_dim": (512,) * 7})
    with torch.device("meta"):
        layout = {key: list(t.shape) for key, t in Wav2Vec2Model(full).state_dict().items()}
    pos = "encoder.pos_conv_embed.conv."
    official = {key: shape for key, shape in manifest.items() if key != "masked_spec_embed"}
    official[pos + "weight"] = official.pop(pos + "parametrizations.weight.original1")  # folded at load
    del official[pos + "parametrizations.weight.original0"]
    assert layout == official


def _copy_with_config(source: Path, target: Path, **changes) -> Path:
    shutil.copytree(source, target)
    config = json.loads((target / "config.json").read_text())
    (target / "config.json").write_text(json.dumps({**config, **changes}))
    return target


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"do_stable_layer_norm": False}, "do_stable_layer_norm=False"),
        ({"hidden_act": "relu"}, "hidden_act='relu'"),
        ({"feat_extract_activation": "gelu_new"}, "feat_extract_activation='gelu_new'"),
        ({"add_adapter": True}, "add_adapter=True"),
        ({"adapter_attn_dim": 8}, "adapter_attn_dim=8"),
        ({"feat_extract_norm": "batch"}, "feat_extract_norm 'batch'"),
        ({"num_attention_heads": 5}, "num_attention_heads 5"),
    ],
    ids=["post-ln", "relu", "gelu-new", "adapter", "attn-adapter", "batch-norm", "heads"],
)
def test_unsupported_config_is_refused_by_field(fixture_w2v: Path, tmp_path: Path, changes, named: str) -> None:
    folder = _copy_with_config(fixture_w2v, tmp_path / "w2v", **changes)
    with pytest.raises(CheckpointError, match=named.replace("(", r"\(")):
        Wav2Vec2LayerMix.from_pretrained(folder)


def test_config_defaults_are_transformers_defaults() -> None:
    # a config.json that leaves a field out gets transformers' default, e.g. post-LN: refused
    with pytest.raises(CheckpointError, match="do_stable_layer_norm=False"):
        Wav2Vec2Config.from_dict({"hidden_size": 32})
    defaults = HFWav2Vec2Config()
    ours = Wav2Vec2Config()
    for name, value in ours.__dict__.items():
        assert tuple(value) == tuple(getattr(defaults, name)) if isinstance(value, tuple) else \
            value == getattr(defaults, name), name


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (lambda s: s.pop("wav2vec2.encoder.pos_conv_embed.conv.weight_g"), "encoder.pos_conv_embed.conv.weight"),
        (lambda s: s.pop("wav2vec2.feature_extractor.conv_layers.2.layer_norm.bias"),
         "feature_extractor.conv_layers.2.layer_norm.bias"),
        (lambda s: s.update({"wav2vec2.encoder.layers.0.attention.q_proj.bias": torch.zeros(3)}),
         "encoder.layers.0.attention.q_proj.bias (3,) (expected (96,))"),
    ],
    ids=["pos-conv-half-pair", "missing-norm", "shape"],
)
def test_checkpoint_that_does_not_fit_names_its_keys(fixture_w2v: Path, tmp_path: Path, edit, named: str) -> None:
    state = torch.load(fixture_w2v / "pytorch_model.bin", weights_only=True)
    edit(state)
    folder = tmp_path / "w2v"
    folder.mkdir()
    shutil.copy(fixture_w2v / "config.json", folder / "config.json")
    torch.save(state, folder / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match=named.replace(".", r"\.").replace("(", r"\(").replace(")", r"\)")):
        Wav2Vec2Model.from_pretrained(folder)


def test_folder_without_weights_is_refused(fixture_w2v: Path, tmp_path: Path) -> None:
    shutil.copy(fixture_w2v / "config.json", tmp_path / "config.json")
    with pytest.raises(CheckpointError, match="model.safetensors or pytorch_model.bin"):
        Wav2Vec2Model.from_pretrained(tmp_path)


def test_safetensors_is_preferred_over_pytorch_model_bin(fixture_w2v: Path, tmp_path: Path) -> None:
    folder = tmp_path / "w2v"
    shutil.copytree(fixture_w2v, folder)
    state = torch.load(fixture_w2v / "pytorch_model.bin", weights_only=True)
    key = "wav2vec2.feature_projection.projection.bias"
    save_file({**state, key: state[key] + 1.0}, str(folder / "model.safetensors"))
    model = Wav2Vec2Model.from_pretrained(folder, num_layers=1)
    assert torch.equal(model.feature_projection.projection.bias, state[key] + 1.0)


def test_loading_and_running_the_tokenizer_codec_leaves_transformers_unimported(spark_tiny: Path) -> None:
    # what the audio_tokenizer stub does at start (load_codec with the encoder) and per request
    model_dir = str(spark_tiny / "model")
    code = (
        "import numpy as np\n"
        "from sparktts import serving\n"
        f"config = {{'parameters': {{'model_dir': {{'string_value': {model_dir!r}}}, 'device': {{'string_value': 'cpu'}}}}}}\n"
        "codec = serving.load_codec(config, with_encoder=True, with_decoder=False)\n"
        "tokens = serving.tokenize_references(codec, [(np.sin(np.arange(16000) / 9).astype(np.float32), 16000)])\n"
        "assert tokens[0][1].shape == (49,), tokens[0][1].shape  # 1 s -> 49 frames\n"
    )
    assert loaded_after(code, ("torch", "transformers")) == ["torch"]
