"""sparktts.serving.TensorRTLLM without Triton: a plain callable stands in for the BLS request to
the ``tensorrt_llm`` model and answers as that model does (exclude_input_in_output, padded
``output_ids``, streaming responses that carry only their newest ids, an empty final response
already left out by the executor)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from sparktts import serving
from sparktts.llm import GenerationParams


class FakeTensorRTLLM:
    """Answers every prompt with ``reply`` ids, one response (offline) or ``per_response`` ids at a time."""

    def __init__(self, reply: list[int], per_response: int = 2, fail_after: int | None = None) -> None:
        self.reply, self.per_response, self.fail_after = reply, per_response, fail_after
        self.calls: list[tuple[dict[str, np.ndarray], bool]] = []
        self.lock = threading.Lock()

    def __call__(self, inputs: dict[str, np.ndarray], decoupled: bool) -> Iterator[dict[str, np.ndarray]]:
        with self.lock:
            self.calls.append((inputs, decoupled))
        streaming = bool(inputs["streaming"][0, 0])
        step = self.per_response if streaming else len(self.reply)
        for sent, start in enumerate(range(0, len(self.reply), step)):
            if self.fail_after is not None and sent == self.fail_after:
                raise RuntimeError("tensorrt_llm: engine fault")
            ids = self.reply[start : start + step]
            padded = np.zeros((1, 1, len(ids) + 3), np.int32)  # the model pads output_ids
            padded[0, 0, : len(ids)] = ids
            yield {"output_ids": padded, "sequence_length": np.array([[len(ids)]], np.int32)}


@pytest.fixture(scope="module")
def tokenizer(model_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir / "LLM")


def semantic_reply(tokenizer, codes: list[int]) -> list[int]:
    return [*tokenizer.convert_tokens_to_ids([f"<|bicodec_semantic_{c}|>" for c in codes]), tokenizer.eos_token_id]


def test_generate_sends_the_official_request_and_reads_the_ids(tokenizer) -> None:
    reply = semantic_reply(tokenizer, [3, 1, 4, 1, 5])
    fake = FakeTensorRTLLM(reply)
    llm = serving.TensorRTLLM(tokenizer, fake, decoupled=False, workers=2)
    params = [GenerationParams(max_new_tokens=64, seed=7), GenerationParams(max_new_tokens=32, do_sample=False)]
    generated = llm.generate(["first prompt", "second prompt"], params)
    assert generated == [reply, reply]
    assert {decoupled for _, decoupled in fake.calls} == {False}
    by_budget = {int(inputs["request_output_len"][0, 0]): inputs for inputs, _ in fake.calls}
    sampled, greedy = by_budget[64], by_budget[32]
    assert sampled["input_ids"].tolist() == [tokenizer(["first prompt"])["input_ids"][0]]
    assert sampled["input_lengths"].tolist() == [[sampled["input_ids"].shape[1]]]
    assert sampled["random_seed"].tolist() == [[7]] and "random_seed" not in greedy
    assert sampled["runtime_top_k"].tolist() == [[50]] and greedy["runtime_top_k"].tolist() == [[1]]
    assert not sampled["streaming"][0, 0] and sampled["end_id"].tolist() == [[tokenizer.eos_token_id]]
    assert llm.semantic_ids(generated[0]) == [3, 1, 4, 1, 5]
    llm.close()


def test_a_decoupled_tensorrt_llm_model_gets_even_offline_requests_on_the_decoupled_api(tokenizer) -> None:
    reply = semantic_reply(tokenizer, [9, 8])
    fake = FakeTensorRTLLM(reply)
    llm = serving.TensorRTLLM(tokenizer, fake, decoupled=True)
    assert llm.generate(["p"], [GenerationParams()]) == [reply]
    assert fake.calls[0][1] is True and not fake.calls[0][0]["streaming"][0, 0]
    llm.close()


def test_stream_yields_ids_response_by_response(tokenizer) -> None:
    codes = list(range(10, 17))
    fake = FakeTensorRTLLM(semantic_reply(tokenizer, codes), per_response=3)
    llm = serving.TensorRTLLM(tokenizer, fake, decoupled=False)
    stream = llm.stream("p", GenerationParams(max_new_tokens=20))
    first = next(stream)  # lazily: one response read, not the whole generation
    assert llm.semantic_index(first) == 10 and len(fake.calls) == 1
    inputs, decoupled = fake.calls[0]
    assert decoupled is True and inputs["streaming"][0, 0]
    rest = list(stream)
    assert [llm.semantic_index(i) for i in [first, *rest]] == [*codes, None]
    llm.close()


def test_errors_of_the_model_reach_the_caller(tokenizer) -> None:
    llm = serving.TensorRTLLM(tokenizer, FakeTensorRTLLM(semantic_reply(tokenizer, [1, 2, 3, 4]), fail_after=1),
                              decoupled=False)
    stream = llm.stream("p", GenerationParams())
    assert len([next(stream), next(stream)]) == 2
    with pytest.raises(RuntimeError, match="engine fault"):
        next(stream)
    with pytest.raises(ValueError, match="2 GenerationParams for 1 prompts"):
        llm.generate(["p"], [GenerationParams(), GenerationParams()])
    llm.close()


def test_the_pipeline_runs_on_it(tokenizer, spark_tts, reference) -> None:
    """SpeechPipeline with TensorRTLLM as its LLM: the same semantic codes reach the vocoder."""
    codes = [5] * 60
    llm = serving.TensorRTLLM(tokenizer, FakeTensorRTLLM(semantic_reply(tokenizer, codes), per_response=7),
                              decoupled=False)
    vocoded: list[list[int]] = []

    def vocode(global_tokens: np.ndarray, semantic: np.ndarray) -> np.ndarray:
        vocoded.append(semantic.tolist())
        return serving.vocode_batch(spark_tts.audio_tokenizer, [(global_tokens, semantic)])[0]

    pipeline = serving.SpeechPipeline(
        tokenize=lambda wav, rate: serving.tokenize_references(spark_tts.audio_tokenizer, [(wav, rate)])[0],
        generate=llm.generate, stream=llm.stream, semantic_ids=llm.semantic_ids,
        semantic_index=llm.semantic_index, vocode=vocode,
    )
    request = serving.SynthesisRequest("Hi there.", reference.wav, reference.sample_rate, None, GenerationParams())
    (speech,) = pipeline.synthesize_batch([request])
    assert vocoded == [codes] and speech.waveform.shape == (60 * 320,)
    chunks = list(pipeline.stream_chunks(request))
    assert vocoded[1:] == [codes[:50], codes[45:]] and [flag for _, flag in chunks] == [False, True]
    pipeline.close()
    llm.close()
