"""The demo model folder: official layout, official vocabulary spellings, loads and synthesises."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from sparktts import prompts
from sparktts.demo import write_demo_model
from sparktts.demo_llm import official_added_tokens
from sparktts.errors import CheckpointError
from sparktts.inference import SparkTTS, SynthesisError
from sparktts.llm import GenerationParams, SparkLM


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory) -> Path:
    return write_demo_model(tmp_path_factory.mktemp("spark_demo"), seed=0)


@pytest.fixture(scope="module")
def demo_tts(demo_dir: Path) -> SparkTTS:
    return SparkTTS.from_pretrained(demo_dir)


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    t = np.arange(24000 * 2) / 24000
    return (0.3 * np.sin(2 * np.pi * 140 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def test_folder_has_the_official_file_set(demo_dir: Path, spark_tiny: Path) -> None:
    for sub in ("LLM", "BiCodec"):
        assert sorted(p.name for p in (demo_dir / sub).iterdir()) == sorted(
            p.name for p in (spark_tiny / "model" / sub).iterdir())
    w2v = demo_dir / "wav2vec2-large-xlsr-53"
    assert {p.name for p in w2v.iterdir()} == {"config.json", "preprocessor_config.json", "pytorch_model.bin"}
    assert (demo_dir / "config.yaml").is_file()
    with safe_open(str(demo_dir / "BiCodec" / "model.safetensors"), "pt") as f:
        keys = set(f.keys())
    assert {"decoder.model.0.weight_g", "decoder.model.0.weight_v", "quantizer.in_project.weight_g"} <= keys
    assert "decoder.model.0.weight" not in keys
    total = sum(p.stat().st_size for p in demo_dir.rglob("*") if p.is_file())
    assert total < 25e6


def test_tokenizer_config_matches_the_fixture_structure(demo_dir: Path, spark_tiny: Path) -> None:
    ours = json.loads((demo_dir / "LLM" / "tokenizer_config.json").read_text())
    theirs = json.loads((spark_tiny / "model" / "LLM" / "tokenizer_config.json").read_text())
    assert {k: v for k, v in ours.items() if k != "added_tokens_decoder"} == {
        k: v for k, v in theirs.items() if k != "added_tokens_decoder"}
    spelled = lambda d: [(e["content"], e["special"]) for _, e in sorted(d.items(), key=lambda kv: int(kv[0]))]  # noqa: E731
    assert spelled(ours["added_tokens_decoder"]) == spelled(theirs["added_tokens_decoder"]) == official_added_tokens()


def test_vocabulary_behaves_like_the_official_one(demo_tts: SparkTTS) -> None:
    lm = demo_tts.lm
    tok = lm.tokenizer
    assert lm.stop_ids == (tok.convert_tokens_to_ids("<|im_end|>"), tok.convert_tokens_to_ids("<|endoftext|>"))
    assert lm.vocab_rows % 128 == 0 and lm.vocab_rows > len(tok)
    prompt = prompts.build_clone_prompt("Cafe\u0301 42!", list(range(32)), [5, 8191], "Ref.")
    ids = lm.encode(prompt)[0].tolist()
    assert tok.decode(ids, skip_special_tokens=True) == prompt.replace("e\u0301", "\u00e9")  # NFC, tokens kept
    assert lm.encode("Caf\u00e9")[0].tolist() == lm.encode("Cafe\u0301")[0].tolist()
    assert tok.decode([lm.stop_ids[0]], skip_special_tokens=True) == ""
    for name in ["<|task_controllable_tts|>", "<|pitch_label_4|>", "<|speed_value_10|>", *prompts.DELIMITERS]:
        assert len(tok.encode(name, add_special_tokens=False)) == 1, name


def test_demo_synthesises_and_is_deterministic(demo_tts: SparkTTS, reference: np.ndarray) -> None:
    kwargs = {"prompt_sample_rate": 24000, "params": GenerationParams(seed=0, max_new_tokens=300)}
    wav = demo_tts.inference("Hello from the demo.", reference, "Reference words.", **kwargs)
    prompt = demo_tts.build_prompt("Hello from the demo.", reference, "Reference words.", prompt_sample_rate=24000)
    generated = demo_tts.lm.generate(prompt.text, GenerationParams(seed=0, max_new_tokens=300))
    assert generated[-1] in demo_tts.lm.stop_ids  # the wired model ends by itself
    assert wav.dtype == np.float32 and wav.shape == (320 * len(demo_tts.lm.semantic_ids(generated)),)
    assert np.isfinite(wav).all() and np.abs(wav).max() <= 1.0
    assert np.array_equal(wav, demo_tts.inference("Hello from the demo.", reference, "Reference words.", **kwargs))
    short = demo_tts.inference("Hi.", reference, **kwargs)  # no transcript: the model opens the section itself
    assert short.size > 0 and short.size % 320 == 0


def test_demo_that_never_ends_speaks_to_its_budget(tmp_path: Path, reference: np.ndarray) -> None:
    pinned = SparkTTS.from_pretrained(write_demo_model(tmp_path / "pinned", seed=0, ends_speech=False))
    prompt = pinned.build_prompt("Hello from the demo.", reference, "Reference words.", prompt_sample_rate=24000)
    for seed in range(3):
        generated = pinned.lm.generate(prompt.text, GenerationParams(seed=seed, max_new_tokens=300))
        assert len(generated) == 300 and not set(generated) & set(pinned.lm.stop_ids)
        assert len(pinned.lm.semantic_ids(generated)) >= 290  # speech, not stray text tokens
    # (the shipped demo ends by itself: test_demo_synthesises_and_is_deterministic)


def test_demo_is_reproducible_from_its_seed(tmp_path: Path, demo_dir: Path) -> None:
    again = write_demo_model(tmp_path / "again", seed=0)
    for rel in ("LLM/model.safetensors", "LLM/tokenizer.json", "BiCodec/model.safetensors"):
        assert (again / rel).read_bytes() == (demo_dir / rel).read_bytes(), rel


def test_demo_control_mode_is_not_wired(demo_tts: SparkTTS) -> None:
    with pytest.raises(SynthesisError):
        demo_tts.inference("Hi.", gender="female", pitch="low", speed="high",
                           params=GenerationParams(seed=0, max_new_tokens=40))


def test_bad_llm_folder_raises_checkpoint_error_naming_the_problem(tmp_path: Path, demo_dir: Path) -> None:
    llm = tmp_path / "LLM"
    shutil.copytree(demo_dir / "LLM", llm)
    state = load_file(str(llm / "model.safetensors"))
    del state["model.layers.1.mlp.down_proj.weight"]
    save_file(state, str(llm / "model.safetensors"))
    with pytest.raises(CheckpointError, match="model.layers.1.mlp.down_proj.weight"):
        SparkLM.from_pretrained(llm)
    (llm / "config.json").unlink()
    with pytest.raises(CheckpointError, match="config.json"):
        SparkLM.from_pretrained(llm)
