"""ContinuousBatch on the spark_tts_tiny golden: rows that join a running batch at different steps
compute their solo logits (up to batched-matmul float bits) and draw the official ids."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pytest
import torch

from sparktts.llm import GenerationParams, SparkLM
from sparktts.llm_batch import ContinuousBatch

from .conftest import GOLDEN_MAX_NEW_TOKENS, golden_params

CASES = ("b1_clone_prompt_text", "b2_clone_no_prompt_text", "b4_clone_prompt_text_greedy")  # 228, 55, 228 ids


def solo_logits(lm: SparkLM, prompt: str, params: GenerationParams) -> list[torch.Tensor]:
    """Each step's (1, V) logits of the prompt decoded alone by SparkLM.decode_steps."""
    steps: list[torch.Tensor] = []
    input_ids = lm.encode(prompt)
    for _ in lm.decode_steps(input_ids, torch.ones_like(input_ids), [params], on_logits=steps.append):
        pass
    return steps


def run_joined(batch: ContinuousBatch, lm: SparkLM, prompts: Sequence[str], params: Sequence[GenerationParams],
               join_at: Sequence[int], leave_at: dict[int, int] | None = None) -> dict[int, list[int]]:
    """Row i joins before step join_at[i] (and leaves before step leave_at[i]); its ids by row."""
    ids: dict[int, list[int]] = defaultdict(list)
    step = 0
    while step <= max(join_at) or len(batch):
        for row, at in enumerate(join_at):
            if at == step:
                ids[row].append(batch.join(row, lm.encode(prompts[row]), params[row]).token)
        for row, at in (leave_at or {}).items():
            if at == step:
                assert batch.leave(row)
        for drawn in batch.step():
            ids[drawn.key].append(drawn.token)
        step += 1
    return ids


def test_rows_joining_at_different_steps_keep_their_solo_logits_and_official_ids(lm: SparkLM, golden) -> None:
    """Three rows join at steps 0, 7 and 30 (a longer prompt joining a shorter running one pads the
    batch, and the other way round); per step each row's logits stay within 1e-4 of its solo run,
    and the seeded sampled rows and the greedy row draw the official ids."""
    batched: dict[int, list[torch.Tensor]] = defaultdict(list)

    def record(keys: Sequence[int], logits: torch.Tensor) -> None:
        for position, key in enumerate(keys):
            batched[key].append(logits[position : position + 1].clone())

    prompts = [golden[case]["prompt"] for case in CASES]
    params = [golden_params(case) for case in CASES]
    order = [1, 0, 2]  # the 55-id prompt runs first, then two 228-id prompts join it
    batch = ContinuousBatch(lm, on_logits=record)
    ids = run_joined(batch, lm, [prompts[i] for i in order], [params[i] for i in order], join_at=[0, 7, 30])
    for row, case in enumerate(CASES[i] for i in order):
        np.testing.assert_array_equal(np.array(ids[row]), golden[case]["generated_ids"], err_msg=case)
        alone = solo_logits(lm, golden[case]["prompt"], golden_params(case))
        assert len(batched[row]) == len(alone) == GOLDEN_MAX_NEW_TOKENS
        worst = max(float((joined - solo).abs().max()) for joined, solo in zip(batched[row], alone, strict=True))
        assert worst < 1e-4, (case, worst)
    assert len(batch) == 0 and batch.width == 0


def test_a_row_that_leaves_frees_its_cache_columns_and_the_others_decode_on(lm: SparkLM, golden) -> None:
    """b1 (228-id prompt) leaves at step 20: b2 (55-id prompt) goes on with its own ids and the
    batch narrows back to b2's own length, with no padding left from b1."""
    cases = ["b2_clone_no_prompt_text", "b1_clone_prompt_text"]
    widths: list[int] = []
    batch = ContinuousBatch(lm, on_logits=lambda keys, logits: widths.append(batch.width))
    ids = run_joined(batch, lm, [golden[c]["prompt"] for c in cases], [golden_params(c) for c in cases],
                     join_at=[0, 3], leave_at={1: 20})
    np.testing.assert_array_equal(np.array(ids[0]), golden[cases[0]]["generated_ids"])
    assert len(ids[1]) == 20 - 3 + 1  # its prefill id, then one id per step it was in
    np.testing.assert_array_equal(np.array(ids[1]), golden[cases[1]]["generated_ids"][:18])
    assert max(widths) >= 228 and widths[-1] == 55 + GOLDEN_MAX_NEW_TOKENS - 2  # cached before its last step
    assert not batch.leave(1) and len(batch) == 0


def test_restricted_rows_batch_among_themselves_and_not_with_full_vocabulary_rows(lm: SparkLM, golden) -> None:
    cases = ["b1_clone_prompt_text", "b2_clone_no_prompt_text"]
    restricted = ContinuousBatch(lm, restrict_vocab=True)
    ids = run_joined(restricted, lm, [golden[c]["prompt"] for c in cases],
                     [golden_params(c, restrict_vocab=True) for c in cases], join_at=[0, 11])
    for row, case in enumerate(cases):  # restricted == exact on these cases (test_llm.py)
        np.testing.assert_array_equal(np.array(ids[row]), golden[case]["generated_ids"], err_msg=case)
    with pytest.raises(ValueError, match="restrict_vocab"):
        ContinuousBatch(lm).join(0, lm.encode(golden[cases[0]]["prompt"]), golden_params(cases[0], restrict_vocab=True))


def test_a_row_done_with_its_first_id_never_joins(lm: SparkLM, golden) -> None:
    batch = ContinuousBatch(lm)
    prompt = lm.encode(golden["b2_clone_no_prompt_text"]["prompt"])
    first = batch.join(5, prompt, replace(golden_params("b2"), max_new_tokens=1))
    assert first.last and first.token == int(golden["b2_clone_no_prompt_text"]["generated_ids"][0])
    assert len(batch) == 0 and batch.step() == []
    batch.join(6, prompt, golden_params("b2"))
    with pytest.raises(ValueError, match="already decoding"):
        batch.join(6, prompt, golden_params("b2"))
