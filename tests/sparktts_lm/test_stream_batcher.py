"""StreamBatcher on the spark_tts_tiny golden: concurrent streams decoded by one thread give each
consumer SparkLM.stream's ids; a consumer that leaves frees its row; a failed step fails every
stream of it and the batcher serves on; close ends what is left."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from sparktts.llm import GenerationParams, SparkLM
from sparktts.serving.stream_batcher import BatcherClosed, StreamBatcher

from .conftest import golden_params

TIMEOUT_S = 120


@pytest.fixture
def step_keys() -> list[list[int]]:
    """The row keys of every forward the batcher ran (its prefills and its steps), in order."""
    return []


@pytest.fixture
def batcher(lm: SparkLM, step_keys: list[list[int]]) -> Iterator[StreamBatcher]:
    stream_batcher = StreamBatcher(lm, on_logits=lambda keys, logits: step_keys.append(list(keys)))
    yield stream_batcher
    stream_batcher.close()


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def test_concurrent_streams_each_get_their_solo_ids(batcher: StreamBatcher, golden, step_keys) -> None:
    cases = ["b1_clone_prompt_text", "b2_clone_no_prompt_text", "b3_control", "b4_clone_prompt_text_greedy"]
    params = [golden_params(case) for case in cases]
    with ThreadPoolExecutor(len(cases)) as pool:
        outputs = list(pool.map(lambda c, p: list(batcher.stream(golden[c]["prompt"], p)), cases, params,
                                timeout=TIMEOUT_S))
    for case, generated in zip(cases, outputs, strict=True):
        np.testing.assert_array_equal(np.array(generated), golden[case]["generated_ids"], err_msg=case)
    assert max(len(keys) for keys in step_keys) > 1  # the streams did share steps
    wait_for(lambda: batcher.active_rows() == 0, "rows left behind")


def test_a_consumer_that_stops_reading_frees_its_row_and_the_others_go_on(
    batcher: StreamBatcher, lm: SparkLM, golden, step_keys
) -> None:
    """Two 3000-token streams (random weights rarely stop); the first is closed after 5 ids, the
    second dropped without closing: each leaves the batch at a step boundary, long before its
    budget, and a stream started afterwards still gets its solo ids."""
    prompt = golden["b2_clone_no_prompt_text"]["prompt"]
    long = GenerationParams(seed=11, max_new_tokens=3000)
    closed, dropped = batcher.stream(prompt, long), batcher.stream(prompt, GenerationParams(seed=12, max_new_tokens=3000))
    head = [next(closed) for _ in range(5)]
    next(dropped)
    closed.close()
    wait_for(lambda: step_keys[-1] == [1], "the closed stream's row stayed in the batch")
    del dropped
    wait_for(lambda: batcher.active_rows() == 0, "the dropped stream's row stayed in the batch")
    assert sum(0 in keys for keys in step_keys) < 3000 and sum(1 in keys for keys in step_keys) < 3000
    assert head == lm.generate(prompt, GenerationParams(seed=11, max_new_tokens=5))
    after = list(batcher.stream(prompt, golden_params("b2")))
    np.testing.assert_array_equal(np.array(after), golden["b2_clone_no_prompt_text"]["generated_ids"])


def test_a_failed_step_fails_every_stream_of_it_and_the_batcher_serves_on(lm: SparkLM, golden) -> None:
    """The diagnostics hook raises once two rows share a step (it runs in the decode thread, as any
    step failure would): both consumers get that error, no row is left, the next stream decodes."""
    armed = threading.Event()
    armed.set()

    def fail_when_shared(keys: Sequence[int], logits: torch.Tensor) -> None:
        if len(keys) > 1 and armed.is_set():
            armed.clear()
            raise RuntimeError("decode step exploded")

    batcher = StreamBatcher(lm, on_logits=fail_when_shared)
    prompt = golden["b2_clone_no_prompt_text"]["prompt"]
    try:
        streams = [batcher.stream(prompt, GenerationParams(seed=seed, max_new_tokens=3000)) for seed in (1, 2)]
        with ThreadPoolExecutor(2) as pool:
            futures = [pool.submit(list, stream) for stream in streams]
            for future in futures:
                with pytest.raises(RuntimeError, match="decode step exploded"):
                    future.result(timeout=TIMEOUT_S)
        assert batcher.active_rows() == 0
        after = list(batcher.stream(prompt, golden_params("b2")))
        np.testing.assert_array_equal(np.array(after), golden["b2_clone_no_prompt_text"]["generated_ids"])
    finally:
        batcher.close()


def test_close_ends_running_streams_and_refuses_new_ones(lm: SparkLM, golden) -> None:
    batcher = StreamBatcher(lm)
    prompt = golden["b2_clone_no_prompt_text"]["prompt"]
    running = batcher.stream(prompt, GenerationParams(seed=3, max_new_tokens=3000))
    next(running)
    batcher.close()
    with pytest.raises(BatcherClosed):
        for _ in running:
            pass
    with pytest.raises(BatcherClosed):
        next(batcher.stream(prompt, golden_params("b2")))
