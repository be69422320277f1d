"""The official ``openai`` package, unchanged, against /v1 on the real stack."""

from __future__ import annotations

import base64
import json

import httpx
import numpy as np
import openai
import pytest

from tests.api_openai.audio_checks import DURATION_SLACK_S, decode_any
from tests.api_openai.conftest import TIMEOUT, save_voice
from tests.stack import Stack

TEXT = "Hello there. How are you?"
THREE = "The first sentence is here. A second one follows it. And the third one ends."
RATES = {"mp3": 44100, "opus": 48000, "aac": 44100, "flac": 40000, "wav": 40000, "pcm": 24000}


@pytest.fixture(scope="module")
def client(stack: Stack) -> openai.OpenAI:
    return openai.OpenAI(api_key="not-needed", base_url=f"{stack.base_url}/v1", max_retries=0, timeout=TIMEOUT)


@pytest.fixture(scope="module")
def wav_reference(client: openai.OpenAI) -> tuple[np.ndarray, int]:
    response = client.audio.speech.create(
        model="tts-1", voice="alloy", input=TEXT, response_format="wav", extra_body={"seed": 5}
    )
    return decode_any(response.content, "wav", streamed=True)


@pytest.mark.parametrize("fmt", ["mp3", "opus", "aac", "flac", "wav", "pcm"])
def test_client_creates_speech_in_every_format(
    client: openai.OpenAI, wav_reference: tuple[np.ndarray, int], fmt: str
) -> None:
    response = client.audio.speech.create(
        model="tts-1", voice="alloy", input=TEXT, response_format=fmt, extra_body={"seed": 5}
    )
    rate = int(response.response.headers["X-Sample-Rate"])
    assert rate == RATES[fmt]
    audio, decoded_rate = decode_any(response.content, fmt, pcm_rate=rate, streamed=True)
    assert decoded_rate == rate
    expected_seconds = wav_reference[0].size / wav_reference[1]
    assert abs(audio.size / rate - expected_seconds) <= DURATION_SLACK_S.get(fmt, 2e-3)
    assert np.isfinite(audio).all()


def test_streaming_response_sends_audio_before_the_last_sentence(client: openai.OpenAI, stack: Stack) -> None:
    in_flight = stack.app.state.metrics.in_flight  # type: ignore[attr-defined]
    with client.audio.speech.with_streaming_response.create(
        model="gpt-4o-mini-tts", voice="default", input=THREE, response_format="mp3", extra_body={"seed": 6}
    ) as response:
        assert response.headers["content-type"] == "audio/mpeg" and response.headers["X-Sentences"] == "3"
        chunks = response.iter_bytes()
        first = next(chunks)
        still_working = in_flight._value.get()  # the request is not finished when its first bytes arrive
        body = first + b"".join(chunks)
    assert first and still_working >= 1
    audio, rate = decode_any(body, "mp3", streamed=True)
    assert rate == 44100 and audio.size / rate > 1.0


def test_sse_stream_sends_deltas_of_one_file_then_done(client: openai.OpenAI) -> None:
    with client.audio.speech.with_streaming_response.create(
        model="gpt-4o-mini-tts", voice="alloy", input=TEXT, response_format="flac", stream_format="sse",
        extra_body={"seed": 5},
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [json.loads(line[5:]) for line in response.iter_lines() if line.startswith("data:")]
    assert [event["type"] for event in events[:-1]] == ["speech.audio.delta"] * (len(events) - 1)
    assert len(events) >= 3 and events[-1]["type"] == "speech.audio.done"
    body = b"".join(base64.b64decode(event["audio"]) for event in events[:-1])
    audio, rate = decode_any(body, "flac", streamed=True)
    assert rate == 40000
    usage = events[-1]["usage"]
    assert usage["input_tokens"] == len(TEXT)
    assert usage["output_tokens"] == round(audio.size / rate * 50)
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]


def test_models_and_voices_are_listed(client: openai.OpenAI, stack: Stack) -> None:
    assert {"tts-1", "gpt-4o-mini-tts", "spark-tts-rvc"} <= {model.id for model in client.models.list()}
    voices = httpx.get(f"{stack.base_url}/v1/audio/voices").json()
    assert "default" in voices["voices"] and "alloy" in voices["voices"]
    alloy = next(entry for entry in voices["data"] if entry["id"] == "alloy")
    assert alloy["alias_of"] == "default"


def test_extra_body_carries_rvc_settings_and_a_reference_override(
    client: openai.OpenAI, stack: Stack, reference_wav: bytes
) -> None:
    assert save_voice(stack, "openai_ref", reference_wav, overwrite="true").status_code == 201
    by_name = client.audio.speech.create(
        model="tts-1", voice="openai_ref", input=TEXT, response_format="wav", extra_body={"seed": 21}
    )
    by_reference = client.audio.speech.create(
        model="tts-1", voice="alloy", input=TEXT, response_format="wav",
        extra_body={"seed": 21, "reference_audio": base64.b64encode(reference_wav).decode()},
    )
    np.testing.assert_array_equal(
        decode_any(by_name.content, "wav", streamed=True)[0], decode_any(by_reference.content, "wav", streamed=True)[0]
    )
    tuned = client.audio.speech.create(
        model="tts-1", voice="openai_ref", input=TEXT, response_format="wav",
        extra_body={"seed": 21, "pitch_shift": 5, "f0_method": "fcpe", "index_rate": 0.3, "protect": 0.4,
                    "rvc_model": "Second"},
    )
    tuned_audio = decode_any(tuned.content, "wav", streamed=True)[0]
    assert tuned_audio.size > 0 and not np.array_equal(tuned_audio, decode_any(by_name.content, "wav", streamed=True)[0])
    unconverted = client.audio.speech.create(
        model="tts-1", voice="openai_ref", input=TEXT, response_format="wav", extra_body={"skip_rvc": True}
    )
    assert unconverted.response.headers["X-Sample-Rate"] == "16000"


def test_speed_stretches_the_duration(client: openai.OpenAI, wav_reference: tuple[np.ndarray, int]) -> None:
    fast = client.audio.speech.create(
        model="tts-1", voice="alloy", input=TEXT, response_format="wav", speed=2.0, extra_body={"seed": 5}
    )
    audio, rate = decode_any(fast.content, "wav", streamed=True)
    full = wav_reference[0].size / wav_reference[1]
    assert abs(audio.size / rate - full / 2) < 2 / rate * 2  # per-sentence rounding only


def test_instructions_are_accepted_and_reported_as_ignored(client: openai.OpenAI) -> None:
    response = client.audio.speech.create(
        model="gpt-4o-mini-tts", voice="alloy", input="Calmly now.", response_format="pcm",
        instructions="Speak like a pirate.", extra_body={"seed": 5},
    )
    assert response.response.headers["X-Instructions"] == "ignored"
    assert response.response.headers["content-type"].startswith("audio/pcm")


@pytest.mark.parametrize(
    ("kwargs", "param", "words"),
    [
        ({"voice": "nobody"}, "voice", ["nobody", "saved voices", "default"]),
        ({"response_format": "wma"}, "response_format", ["mp3", "opus"]),
        ({"speed": 4.5}, "speed", ["4"]),
        ({"speed": 0.1}, "speed", ["0.25"]),
        ({"input": "   "}, "input", ["empty"]),
        ({"model": "dall-e-3"}, "model", ["tts-1"]),
        ({"extra_body": {"pitch_shift": 40}}, "pitch_shift", ["24"]),
        ({"extra_body": {"colour": "blue"}}, "colour", ["Extra inputs"]),
        ({"extra_body": {"reference_audio": "%%%"}}, "reference_audio", ["base64"]),
        ({"extra_body": {"sample_rate": 40000}}, "sample_rate", ["44100"]),
    ],
    ids=lambda value: str(value)[:30],
)
def test_bad_requests_get_openai_shaped_400s(
    client: openai.OpenAI, kwargs: dict, param: str, words: list[str]
) -> None:
    request = {"model": "tts-1", "voice": "alloy", "input": "Hi.", "response_format": "mp3", **kwargs}
    with pytest.raises(openai.BadRequestError) as caught:
        client.audio.speech.create(**request)
    error = caught.value.response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["type"] == "invalid_request_error"
    assert error["param"] == param, error
    for word in words:
        assert word in error["message"], error["message"]
