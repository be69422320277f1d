"""SparkLM against the spark_tts_tiny golden: tokenizer ids, forward pass, greedy and seeded sampling."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from sparktts.llm import GenerationParams, SparkLM

from .conftest import CASES, GOLDEN_MAX_NEW_TOKENS, golden_params


def test_tokenizer_ids_equal_the_official_ones(lm: SparkLM, golden) -> None:
    for case in CASES:
        ids = lm.encode(golden[case]["prompt"])
        assert ids.dtype == torch.int64
        np.testing.assert_array_equal(ids.numpy(), golden[case]["input_ids"], err_msg=case)


def test_model_runs_in_float32_despite_bfloat16_in_config(lm: SparkLM) -> None:
    assert lm.model.dtype == torch.float32
    assert lm.vocab_rows == 13824 and len(lm.tokenizer) == 13749  # padded head rows stay in play
    assert lm.stop_ids == (317, 315)  # generation_config.json eos list


def test_prefill_logits_match(lm: SparkLM, golden) -> None:
    for case in CASES:
        with torch.inference_mode():
            logits = lm.model(lm.encode(golden[case]["prompt"])).logits[0, -1]
        np.testing.assert_allclose(logits.numpy(), golden[case]["prefill_logits_last"], rtol=0, atol=1e-3)


@pytest.mark.parametrize("case", CASES)
def test_generation_reproduces_the_official_ids(lm: SparkLM, golden, case: str) -> None:
    """b4 is greedy; b1-b3 are torch.manual_seed(1234) + HF sampling, reproduced id for id."""
    generated = lm.generate(golden[case]["prompt"], golden_params(case))
    np.testing.assert_array_equal(np.array(generated), golden[case]["generated_ids"])
    assert lm.tokenizer.decode(generated, skip_special_tokens=True) == golden[case]["decoded"]
    assert lm.semantic_ids(generated) == golden[case]["semantic_ids"][0].tolist()


def test_fast_matmul_keeps_the_official_ids(spark_tiny, golden) -> None:
    """W @ X^T GEMMs change logits in the last bits only: every golden id survives, on either path."""
    fast = SparkLM.from_pretrained(spark_tiny / "model" / "LLM")
    exact = SparkLM.from_pretrained(spark_tiny / "model" / "LLM", fast_matmul=False)
    assert fast.fast_matmul and not exact.fast_matmul  # on by default for a CPU model
    prompt = exact.encode(golden["b1_clone_prompt_text"]["prompt"])
    with torch.inference_mode():  # 5 rows: the GEMM path
        np.testing.assert_allclose(fast.model(prompt[:, :5]).logits, exact.model(prompt[:, :5]).logits, atol=1e-4)
    for case in CASES:
        for restrict in (False, True):
            generated = fast.generate(golden[case]["prompt"], golden_params(case, restrict_vocab=restrict))
            np.testing.assert_array_equal(np.array(generated), golden[case]["generated_ids"], err_msg=case)
        generated = exact.generate(golden[case]["prompt"], golden_params(case))
        np.testing.assert_array_equal(np.array(generated), golden[case]["generated_ids"], err_msg=case)


def test_stream_yields_the_generate_ids(lm: SparkLM, golden) -> None:
    case = "b3_control"
    stream = lm.stream(golden[case]["prompt"], golden_params(case))
    first = next(stream)
    assert isinstance(first, int)
    assert [first, *stream] == golden[case]["generated_ids"].tolist()


def test_semantic_and_global_index_agree_with_the_regex(lm: SparkLM, golden) -> None:
    ids = golden["b3_control"]["generated_ids"].tolist()
    assert [c for c in map(lm.semantic_index, ids) if c is not None] == lm.semantic_ids(ids)
    assert [c for c in map(lm.global_index, ids) if c is not None] == lm.global_ids(ids)


def test_batch_rows_sample_as_they_would_alone(lm: SparkLM, golden) -> None:
    cases = ["b1_clone_prompt_text", "b2_clone_no_prompt_text", "b3_control"]  # prompt lengths 228, 55, 23
    outputs = lm.generate_batch([golden[c]["prompt"] for c in cases], [golden_params(c) for c in cases])
    for case, generated in zip(cases, outputs, strict=True):
        np.testing.assert_array_equal(np.array(generated), golden[case]["generated_ids"], err_msg=case)


def test_rows_that_stop_early_leave_the_batch_and_the_rest_decode_on(lm: SparkLM, golden) -> None:
    """Per-row budgets 40 / 120 / 80: the batch shrinks twice; every row still samples as it would alone."""
    cases = ["b1_clone_prompt_text", "b2_clone_no_prompt_text", "b3_control"]
    budgets = [40, GOLDEN_MAX_NEW_TOKENS, 80]
    running: list[int] = []
    params = [replace(golden_params(case), max_new_tokens=budget) for case, budget in zip(cases, budgets, strict=True)]
    outputs = lm.generate_batch([golden[c]["prompt"] for c in cases], params)
    steps = list(lm.decode_steps(*lm.encode_batch([golden[c]["prompt"] for c in cases]), params,
                                 on_logits=lambda logits: running.append(logits.shape[0])))
    for case, budget, generated in zip(cases, budgets, outputs, strict=True):
        np.testing.assert_array_equal(np.array(generated), golden[case]["generated_ids"][:budget], err_msg=case)
    assert len(steps) == GOLDEN_MAX_NEW_TOKENS
    assert running == [3] * 40 + [2] * 40 + [1] * 40  # rows leave the batch as they stop


def test_restrict_vocab_is_exact_where_no_text_token_is_a_candidate(lm: SparkLM, golden) -> None:
    """Measured on the golden cases: the full model put a non-grammar token into its top-50 on
    0 / 1 / 3 / 0 of 120 steps (b1..b4); top-p removed them, so the restricted ids are identical."""
    unsafe = []
    for case in CASES:
        restricted = lm.generate(golden[case]["prompt"], golden_params(case, restrict_vocab=True))
        np.testing.assert_array_equal(np.array(restricted), golden[case]["generated_ids"], err_msg=case)
        report = lm.restriction_report(golden[case]["prompt"], golden_params(case))
        assert report["steps"] == GOLDEN_MAX_NEW_TOKENS
        unsafe.append(int(report["unsafe_steps"]))
    assert unsafe == [0, 1, 3, 0]
    grammar = lm.grammar_ids()
    assert grammar.numel() == 4096 + 8192 + 8 + 2 and bool((grammar[1:] > grammar[:-1]).all())


@pytest.mark.parametrize(
    ("field", "value"),
    [("temperature", 0.0), ("top_k", -1), ("top_k", 2.5), ("top_p", 0.0), ("top_p", 1.5),
     ("max_new_tokens", 0), ("seed", -3)],
)
def test_generation_params_reject_bad_values_by_name(field: str, value) -> None:
    with pytest.raises(ValueError, match=field):
        GenerationParams(**{field: value})


def test_batch_needs_one_params_per_prompt(lm: SparkLM) -> None:
    with pytest.raises(ValueError, match="GenerationParams"):
        lm.generate_batch(["a", "b"], [GenerationParams()])
    assert lm.generate_batch([], GenerationParams()) == []
