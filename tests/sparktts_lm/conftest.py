"""Fixtures for the Spark-TTS LLM / inference tests: the spark_tts_tiny golden, loaded once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from sparktts.inference import SparkTTS
from sparktts.llm import GenerationParams, SparkLM
from sparktts.llm_onnx import OnnxSparkLM
from sparktts.onnx_export import export_llm

CASES = ("b1_clone_prompt_text", "b2_clone_no_prompt_text", "b3_control", "b4_clone_prompt_text_greedy")
GOLDEN_SEED = 1234  # the harness ran torch.manual_seed(1234) right before generate
GOLDEN_MAX_NEW_TOKENS = 120


@pytest.fixture(scope="session")
def tiny_tts(spark_tiny: Path) -> SparkTTS:
    return SparkTTS.from_pretrained(spark_tiny / "model")


@pytest.fixture(scope="session")
def lm(tiny_tts: SparkTTS) -> SparkLM:
    return tiny_tts.lm


def golden_params(case: str, **extra: Any) -> GenerationParams:
    """The golden run's sampling for ``case`` (greedy for the ``_greedy`` case), plus ``extra``."""
    return GenerationParams(max_new_tokens=GOLDEN_MAX_NEW_TOKENS, seed=GOLDEN_SEED,
                            do_sample="greedy" not in case, **extra)


@pytest.fixture(scope="session")
def golden(spark_tiny: Path) -> dict[str, dict[str, Any]]:
    """Per case: the npz arrays plus ``prompt`` and ``decoded`` strings."""
    out: dict[str, dict[str, Any]] = {}
    for case in CASES:
        with np.load(spark_tiny / "expected" / f"{case}.npz") as data:
            entry: dict[str, Any] = {key: data[key] for key in data.files}
        entry["prompt"] = (spark_tiny / "expected" / f"{case}.prompt.txt").read_text(encoding="utf-8")
        entry["decoded"] = (spark_tiny / "expected" / f"{case}.decoded.txt").read_text(encoding="utf-8")
        out[case] = entry
    return out


@pytest.fixture(scope="session")
def case_kwargs(spark_tiny: Path) -> dict[str, dict[str, Any]]:
    """SparkTTS.inference keyword arguments reproducing each golden case."""
    texts = json.loads((spark_tiny / "inputs" / "texts.json").read_text(encoding="utf-8"))
    wav, rate = sf.read(str(spark_tiny / "inputs" / "reference.wav"), dtype="float64", always_2d=True)
    clone = {"prompt_speech": wav, "prompt_sample_rate": rate}
    common = {"params": GenerationParams(seed=GOLDEN_SEED, max_new_tokens=GOLDEN_MAX_NEW_TOKENS)}
    greedy = {"params": GenerationParams(seed=GOLDEN_SEED, max_new_tokens=GOLDEN_MAX_NEW_TOKENS, do_sample=False)}
    return {
        "b1_clone_prompt_text": {"text": texts["texts"]["clone_prompt_text"], "prompt_text": texts["prompt_text"],
                                 **clone, **common},
        "b2_clone_no_prompt_text": {"text": texts["texts"]["clone_no_prompt_text"], **clone, **common},
        "b3_control": {"text": texts["texts"]["control"], **texts["control"], **common},
        "b4_clone_prompt_text_greedy": {"text": texts["texts"]["clone_prompt_text"],
                                        "prompt_text": texts["prompt_text"], **clone, **greedy},
    }


# ------------------------------------------------------------------ the ONNX exports of the tiny LLM
@pytest.fixture(scope="session")
def export_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("onnxruntime_genai")
    return tmp_path_factory.mktemp("llm_onnx")


@pytest.fixture(scope="session")
def fp32_dir(spark_tiny: Path, export_root: Path) -> Path:
    return export_llm(spark_tiny / "model" / "LLM", export_root, "fp32")


@pytest.fixture(scope="session")
def int8_dir(spark_tiny: Path, export_root: Path) -> Path:
    return export_llm(spark_tiny / "model" / "LLM", export_root, "int8")


@pytest.fixture(scope="session")
def onnx_fp32(spark_tiny: Path, fp32_dir: Path) -> OnnxSparkLM:
    return OnnxSparkLM.from_pretrained(spark_tiny / "model" / "LLM", fp32_dir, threads=1)


@pytest.fixture(scope="session")
def onnx_int8(spark_tiny: Path, int8_dir: Path) -> OnnxSparkLM:
    return OnnxSparkLM.from_pretrained(spark_tiny / "model" / "LLM", int8_dir, threads=1)
