"""bench_onnx_decode's measuring parts on the tiny golden LLM's int8 export: the baseline (one GenAI
generator per row) and the decoder decode the same budgets, and the decoder's logits are GenAI's."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bench.bench_onnx_decode import GenaiRows, decode_time, fidelity_rows, largest_difference
from sparktts.generation import GenerationParams
from sparktts.llm_onnx import OnnxBatch, OnnxSparkLM
from sparktts.onnx_export import export_llm

og = pytest.importorskip("onnxruntime_genai")


@pytest.fixture(scope="module")
def tiny(spark_tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[OnnxSparkLM, object]:
    llm_dir = spark_tiny / "model" / "LLM"
    onnx_dir = export_llm(llm_dir, tmp_path_factory.mktemp("bench_onnx"), "int8")
    return OnnxSparkLM.from_pretrained(llm_dir, onnx_dir, threads=1), og.Model(str(onnx_dir))


def test_both_paths_decode_every_row_to_its_budget(tiny) -> None:
    lm, genai = tiny
    prompt = torch.arange(400, 440).reshape(1, -1)
    for rows in (1, 3):
        baseline = GenaiRows(lm, genai)
        batch = OnnxBatch(lm)
        for row in range(rows):
            baseline.join(prompt[0].tolist(), GenerationParams(max_new_tokens=5, seed=3))
            batch.join(row, prompt, GenerationParams(max_new_tokens=5, seed=3))
        assert len(baseline) == len(batch) == rows  # seeded: no row draws a stop id within the budget
        for _ in range(4):
            baseline.step()
            batch.step()
        assert len(baseline) == len(batch) == 0  # the 5th id was the last of every row
    step, prefill = decode_time(lambda: OnnxBatch(lm), lambda batch, row, new: batch.join(
        row, prompt, GenerationParams(max_new_tokens=new)), rows=2, steps=3, repeats=1)
    assert step > 0 and prefill > 0


def test_the_decoder_scores_what_genai_scores(tiny) -> None:
    lm, genai = tiny
    assert largest_difference(lm, genai, list(range(400, 460)), steps=10) == 0.0


def test_fidelity_of_the_float32_export_is_exact_on_both_heads(spark_tiny: Path, tmp_path: Path) -> None:
    llm_dir = spark_tiny / "model" / "LLM"
    lm = OnnxSparkLM.from_pretrained(llm_dir, export_llm(llm_dir, tmp_path, "fp32"), threads=1)
    found = dict(fidelity_rows(lm, llm_dir, steps=8, threads=1))
    assert list(found) == ["decoder, full head", "decoder + restrict_vocab (grammar rows)"]
    for name, row in found.items():
        assert row.cosine_min > 0.999999 and row.max_rel_error < 1e-3, (name, row)
