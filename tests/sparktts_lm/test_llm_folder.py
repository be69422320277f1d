"""``sparktts.llm_folder`` reads the LLM folder as transformers does: on the demo folder (the official
vocabulary's spellings) and on the spark_tts_tiny golden's, the light tokenizer gives
``AutoTokenizer``'s ids for Spark's prompts, its decoded text and token lookups, and the folder
gives the stop / pad ids and vocabulary size the torch path reads."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest
import torch
from transformers import AutoConfig, AutoTokenizer, GenerationConfig, PreTrainedTokenizerBase

from sparktts import prompts
from sparktts.demo_llm import write_demo_llm
from sparktts.errors import CheckpointError
from sparktts.llm import SparkLM
from sparktts.llm_folder import JsonTokenizer, LLMFolder, special_ids
from sparktts.llm_vocab import SparkVocabulary

TEXTS = (
    "Hello from the golden model.",
    "Cafe\u0301 au lait, 42 times!",  # NFC happens in the tokenizer
    "\u4f60\u597d, tiny world.",
    "  Two  spaces,\ttabs\nand lines\r\n; it's 3.5 km -- \u00a1ol\u00e9! \U0001f600 <|im_end|> <b>",
    "",
)


@pytest.fixture(scope="module", params=["demo", "spark_tts_tiny"])
def llm_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, spark_tiny: Path) -> Path:
    if request.param == "demo":
        return write_demo_llm(tmp_path_factory.mktemp("demo") / "LLM", seed=0)
    return spark_tiny / "model" / "LLM"


@pytest.fixture(scope="module")
def tokenizers_pair(llm_dir: Path) -> tuple[PreTrainedTokenizerBase, JsonTokenizer]:
    return AutoTokenizer.from_pretrained(str(llm_dir)), JsonTokenizer.from_folder(llm_dir)


def spark_prompts(golden: dict) -> list[str]:
    """Clone prompts (with and without transcript) and control prompts over TEXTS, plus the golden's."""
    draw = random.Random(0)
    built = [case["prompt"] for case in golden.values()]
    for text in TEXTS:
        globals_ = [0, prompts.NUM_GLOBAL_CODES - 1, *(draw.randrange(prompts.NUM_GLOBAL_CODES) for _ in range(30))]
        semantic = [0, prompts.NUM_SEMANTIC_CODES - 1, *(draw.randrange(prompts.NUM_SEMANTIC_CODES) for _ in range(60))]
        if text:
            built.append(prompts.build_clone_prompt(text, globals_))
            built += [prompts.build_control_prompt(text, gender, level, speed)
                      for gender in prompts.GENDER for level in prompts.LEVEL for speed in ("very_low", "very_high")]
        built.append(prompts.build_clone_prompt(TEXTS[0], globals_, semantic, text))  # "" selects the transcript template
    return built


def test_prompt_ids_are_autotokenizers(tokenizers_pair, golden) -> None:
    auto, light = tokenizers_pair
    for prompt in spark_prompts(golden):
        expected = auto([prompt], return_tensors="pt")["input_ids"]  # what SparkVocabulary.encode used to call
        assert light.encode(prompt) == auto.encode(prompt) == expected[0].tolist(), prompt


def test_decoding_and_lookups_are_autotokenizers(tokenizers_pair, golden) -> None:
    auto, light = tokenizers_pair
    assert (light.unk_token_id, light.pad_token_id) == (auto.unk_token_id, auto.pad_token_id)
    draw = random.Random(1)
    rows = len(auto) + 3  # past the vocabulary too: None both
    sequences = [auto.encode(prompt) for prompt in spark_prompts(golden)]
    sequences += [[draw.randrange(rows - 3) for _ in range(80)] for _ in range(20)]  # any id, specials included
    for ids in sequences:
        for skip in (True, False):
            assert light.decode(ids, skip_special_tokens=skip) == auto.decode(ids, skip_special_tokens=skip)
    assert [light.convert_ids_to_tokens(i) for i in range(rows)] == [auto.convert_ids_to_tokens(i) for i in range(rows)]
    names = [prompts.global_token(i) for i in range(prompts.NUM_GLOBAL_CODES)]
    names += [prompts.semantic_token(i) for i in range(prompts.NUM_SEMANTIC_CODES)]
    names += [*prompts.DELIMITERS, *prompts.TASK_TOKENS.values(), "<|im_end|>", "<|endoftext|>", "<|not_a_token|>", "a"]
    assert light.convert_tokens_to_ids(names) == auto.convert_tokens_to_ids(names)
    assert [light.convert_tokens_to_ids(name) for name in names[-4:]] == [auto.convert_tokens_to_ids(name)
                                                                         for name in names[-4:]]


def test_vocabulary_rows_and_code_lookups_are_the_torch_paths(llm_dir: Path, tokenizers_pair) -> None:
    auto, light = tokenizers_pair
    folder = LLMFolder.read(llm_dir)
    ours = SparkVocabulary(light, stop_ids=folder.stop_ids, pad_id=folder.pad_id, vocab_rows=folder.vocab_size)
    theirs = SparkVocabulary(auto, stop_ids=folder.stop_ids, pad_id=folder.pad_id, vocab_rows=folder.vocab_size)
    assert torch.equal(ours.grammar_ids(), theirs.grammar_ids())
    for token_id in range(folder.vocab_size):
        assert ours.semantic_index(token_id) == theirs.semantic_index(token_id)
        assert ours.global_index(token_id) == theirs.global_index(token_id)
    generated = ours.grammar_ids().tolist()
    assert ours.semantic_ids(generated) == theirs.semantic_ids(generated) and ours.semantic_ids(generated)
    assert ours.global_ids(generated) == theirs.global_ids(generated) and ours.global_ids(generated)
    batch = [prompts.build_control_prompt("Hi.", "male", "low", "high"), prompts.build_clone_prompt("Hi.", [1] * 32)]
    for left, right in zip(ours.encode_batch(batch), theirs.encode_batch(batch), strict=True):
        assert torch.equal(left, right)
    assert ours.control_grammar() is not None and theirs.control_grammar() is not None  # every control token found


def test_stop_pad_ids_and_vocab_size_are_transformers(llm_dir: Path, tokenizers_pair) -> None:
    auto, _light = tokenizers_pair
    folder = LLMFolder.read(llm_dir)
    model_config = AutoConfig.from_pretrained(str(llm_dir))
    expected = special_ids(GenerationConfig.from_pretrained(str(llm_dir)), model_config, auto)
    assert (folder.stop_ids, folder.pad_id) == expected
    assert folder.vocab_size == model_config.vocab_size


def test_the_tiny_folder_gives_the_torch_lms_ids(spark_tiny: Path, lm: SparkLM) -> None:
    folder = LLMFolder.read(spark_tiny / "model" / "LLM")
    assert (folder.stop_ids, folder.pad_id, folder.vocab_size) == (lm.stop_ids, lm.pad_id, lm.vocab_rows)


def copy_without(source: Path, target: Path, *missing: str) -> Path:
    """The folder's small files (no weights), less ``missing``."""
    target.mkdir()
    for path in source.iterdir():
        if path.name not in missing and path.suffix != ".safetensors":
            shutil.copyfile(path, target / path.name)
    return target


def test_without_a_generation_config_the_model_config_decides(llm_dir: Path, tmp_path: Path) -> None:
    copied = copy_without(llm_dir, tmp_path / "LLM", "generation_config.json")
    model_config = AutoConfig.from_pretrained(str(copied))
    expected = special_ids(GenerationConfig.from_model_config(model_config), model_config,
                           AutoTokenizer.from_pretrained(str(copied)))
    folder = LLMFolder.read(copied)
    assert (folder.stop_ids, folder.pad_id) == expected


def test_a_folder_without_tokenizer_json_is_refused_by_name(llm_dir: Path, tmp_path: Path) -> None:
    copied = copy_without(llm_dir, tmp_path / "LLM", "tokenizer.json")
    assert (copied / "vocab.json").is_file() and (copied / "merges.txt").is_file()  # the slow files remain
    with pytest.raises(CheckpointError, match="no tokenizer.json"):
        LLMFolder.read(copied)


def test_a_config_without_vocab_size_is_refused(llm_dir: Path, tmp_path: Path) -> None:
    copied = copy_without(llm_dir, tmp_path / "LLM")
    (copied / "config.json").write_text('{"model_type": "qwen2"}')
    with pytest.raises(CheckpointError, match="vocab_size"):
        LLMFolder.read(copied)
