"""SparkTTS end to end against the official outputs, streaming against offline, and bad input."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest
import torch

from sparktts.inference import SparkTTS, SynthesisError
from sparktts.llm import GenerationParams
from sparktts.streaming import crossfade_join

from .conftest import CASES


def with_budget(kwargs: dict[str, Any], max_new_tokens: int) -> dict[str, Any]:
    """A golden case's keyword arguments with another token budget."""
    return {**kwargs, "params": replace(kwargs["params"], max_new_tokens=max_new_tokens)}


@pytest.mark.parametrize("case", CASES)
def test_inference_reproduces_the_official_wav(tiny_tts: SparkTTS, golden, case_kwargs, case: str) -> None:
    """Reference file -> tokens -> prompt -> seeded LLM -> parse -> BiCodec, all four cases."""
    wav = tiny_tts.inference(**case_kwargs[case])
    expected = golden[case]["wav"]
    assert wav.dtype == np.float32 and wav.shape == expected.shape
    np.testing.assert_allclose(wav, expected, rtol=0, atol=1e-4)


def test_reference_file_gives_the_official_prompts(tiny_tts: SparkTTS, golden, case_kwargs, spark_tiny) -> None:
    """Stereo 24 kHz file -> channel 0, soxr, normalise -> BiCodec tokens -> the exact prompt strings."""
    for case in CASES:
        kwargs = {k: v for k, v in case_kwargs[case].items() if k in ("text", "prompt_speech", "prompt_text",
                                                                      "prompt_sample_rate", "gender", "pitch", "speed")}
        request = tiny_tts.build_prompt(**kwargs)
        assert request.text == golden[case]["prompt"], case
        assert request.control == (case == "b3_control")
    from_path = tiny_tts.build_prompt("Hi.", spark_tiny / "inputs" / "reference.wav", "Ref.")
    assert from_path.text == tiny_tts.build_prompt("Hi.", **{k: case_kwargs["b1_clone_prompt_text"][k] for k in (
        "prompt_speech", "prompt_sample_rate")}, prompt_text="Ref.").text


class _Recorder:
    """Wraps detokenize to record the semantic ids of every vocoded chunk."""

    def __init__(self, tts: SparkTTS) -> None:
        self.tts, self.calls = tts, []
        self.original = tts.audio_tokenizer.detokenize

    def __call__(self, global_tokens, semantic_tokens):
        self.calls.append(torch.as_tensor(semantic_tokens).reshape(-1).tolist())
        return self.original(global_tokens, semantic_tokens)


@pytest.fixture()
def recorder(tiny_tts: SparkTTS, monkeypatch) -> _Recorder:
    rec = _Recorder(tiny_tts)
    monkeypatch.setattr(tiny_tts.audio_tokenizer, "detokenize", rec)
    return rec


@pytest.mark.parametrize("case", ["b1_clone_prompt_text", "b3_control"])
def test_stream_vocodes_the_offline_tokens_on_the_official_schedule(
    tiny_tts: SparkTTS, golden, case_kwargs, recorder: _Recorder, case: str
) -> None:
    chunks = list(tiny_tts.stream(**case_kwargs[case]))
    offline_ids = golden[case]["semantic_ids"][0].tolist()
    first, second = recorder.calls  # 120 / 85 semantic ids: chunk of 50, then the rest from token 45
    assert len(first) == 50 and first + second[5:] == offline_ids and second[:5] == first[-5:]
    assert [c.shape[0] for c in chunks] == [16000, 320 * (len(offline_ids) - 45)]
    joined = crossfade_join(chunks, 1600)
    offline = golden[case]["wav"]
    assert joined.shape == offline.shape
    # The decoder sees a cut context at each chunk edge, so samples near the join differ (up to
    # ~0.3 here, tokens 30..64 around the join at 45..50). Away from it, chunk and offline agree.
    frames = np.abs(joined - offline).reshape(-1, 320).max(axis=1)
    far = np.r_[0:25, 70 : len(offline_ids)]
    assert frames[far].max() < 1e-5
    assert np.array_equal(np.concatenate(list(tiny_tts.stream(**case_kwargs[case], crossfade=True))), joined)


def test_short_output_streams_as_one_chunk_equal_to_offline(tiny_tts: SparkTTS, case_kwargs) -> None:
    kwargs = with_budget(case_kwargs["b4_clone_prompt_text_greedy"], 30)
    offline = tiny_tts.inference(**kwargs)
    chunks = list(tiny_tts.stream(**kwargs))
    assert len(chunks) == 1 and np.array_equal(chunks[0], offline) and offline.shape == (30 * 320,)


def test_exact_chunk_boundary_leaves_no_overlap_only_chunk(tiny_tts: SparkTTS, case_kwargs, recorder) -> None:
    kwargs = with_budget(case_kwargs["b4_clone_prompt_text_greedy"], 50)
    chunks = list(tiny_tts.stream(**kwargs))
    assert [len(c) for c in recorder.calls] == [50]  # upstream would vocode the 5 overlap tokens again
    assert np.array_equal(chunks[0], tiny_tts.inference(**kwargs))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"text": ""}, "text is empty"),
        ({"text": "   \n"}, "text is empty"),
        ({"text": "Hi"}, "prompt_speech"),
        ({"text": "Hi", "pitch": "low"}, "needs gender"),
        ({"text": "Hi", "gender": "robot", "pitch": "low", "speed": "low"}, "gender"),
        ({"text": "Hi", "prompt_speech": np.zeros(16000, np.float32)}, "silent"),
        ({"text": "Hi", "prompt_speech": np.full(4000, 0.3, np.float32)}, "at least 0.5 s"),
        ({"text": "Hi", "prompt_speech": np.full(16000, np.nan, np.float32)}, "NaN"),
        ({"text": "Hi", "prompt_speech": np.ones(16000, np.int16)}, "floats"),
        ({"text": "Hi", "prompt_speech": np.full(16000, 0.3), "prompt_sample_rate": 0}, "prompt_sample_rate"),
    ],
)
def test_bad_input_raises_a_clear_value_error(tiny_tts: SparkTTS, kwargs, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tiny_tts.inference(**kwargs)
    with pytest.raises(ValueError, match=message):
        next(tiny_tts.stream(**kwargs))


def test_bad_generation_params_raise_a_clear_value_error() -> None:
    with pytest.raises(ValueError, match="temperature"):
        GenerationParams(temperature=0.0)


def test_control_output_without_32_globals_is_a_synthesis_error(tiny_tts: SparkTTS, case_kwargs) -> None:
    kwargs = with_budget(case_kwargs["b3_control"], 10)  # stops inside the global section
    with pytest.raises(SynthesisError, match="global tokens"):
        tiny_tts.inference(**kwargs)
    with pytest.raises(SynthesisError, match="semantic"):
        list(tiny_tts.stream(**kwargs))
