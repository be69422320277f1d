"""Output formats, sample rate and speed on the seed's routes, on the real stack."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from tests.api.conftest import decode, espeak_wav, parse_multipart, parse_sse
from tests.api_openai.audio_checks import DURATION_SLACK_S, decode_any
from tests.api_openai.conftest import form_post
from tests.stack import Stack

TEXT = "Hello there. How are you?"


@pytest.fixture(scope="module")
def wav_default(stack: Stack) -> tuple[np.ndarray, int]:
    response = form_post(stack.base_url, "/synthesize", {"text": TEXT, "voice": "default", "seed": 5})
    assert response.status_code == 200, response.text
    return decode(response.content)


@pytest.mark.parametrize(
    ("fields", "headers", "fmt", "media", "rate"),
    [
        ({"format": "mp3"}, {}, "mp3", "audio/mpeg", 44100),
        ({}, {"Accept": "audio/ogg"}, "opus", "audio/ogg", 48000),
        ({"format": "aac"}, {"Accept": "audio/flac"}, "aac", "audio/aac", 44100),
        ({}, {"Accept": "audio/flac"}, "flac", "audio/flac", 40000),
        ({"format": "wav_float"}, {}, "wav_float", "audio/wav", 40000),
        ({"format": "pcm", "sample_rate": 16000}, {}, "pcm", "audio/pcm", 16000),
        ({"sample_rate": 22050}, {}, "wav", "audio/wav", 22050),
    ],
    ids=["mp3-field", "opus-accept", "field-beats-accept", "flac-accept", "wav-float", "pcm-16k", "wav-22k"],
)
def test_synthesize_answers_in_the_requested_format_and_rate(
    stack: Stack, wav_default: tuple[np.ndarray, int], fields: dict, headers: dict, fmt: str, media: str, rate: int
) -> None:
    response = form_post(stack.base_url, "/synthesize", {"text": TEXT, "voice": "default", "seed": 5, **fields},
                         headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(media)
    assert response.headers["X-Sample-Rate"] == str(rate) and response.headers["X-Audio-Format"] == fmt
    audio, decoded_rate = decode_any(response.content, fmt, pcm_rate=rate)
    assert decoded_rate == rate
    expected = wav_default[0].size / wav_default[1]
    assert abs(audio.size / rate - expected) <= DURATION_SLACK_S.get(fmt, 2e-3)
    assert abs(float(response.headers["X-Audio-Duration"]) - expected) < 2e-3


def test_speed_two_halves_the_duration_and_one_is_bit_identical(
    stack: Stack, wav_default: tuple[np.ndarray, int]
) -> None:
    same = form_post(stack.base_url, "/synthesize", {"text": TEXT, "voice": "default", "seed": 5, "speed": "1.0"})
    np.testing.assert_array_equal(decode(same.content)[0], wav_default[0])
    fast = form_post(stack.base_url, "/synthesize", {"text": TEXT, "voice": "default", "seed": 5, "speed": "2"})
    audio, rate = decode(fast.content)
    assert audio.size == round(wav_default[0].size / 2)


def test_stream_parts_are_each_a_complete_file_of_the_format(stack: Stack) -> None:
    response = form_post(stack.base_url, "/synthesize/stream",
                         {"text": "One sentence here. Another one there.", "voice": "default", "seed": 2,
                          "format": "mp3"})
    assert response.status_code == 200, response.text
    parts = parse_multipart(response.content, response.headers["content-type"])
    assert len(parts) == 2
    for headers, payload in parts:
        assert headers["content-type"] == "audio/mpeg" and headers["x-sample-rate"] == "44100"
        audio, rate = decode_any(payload, "mp3")
        assert rate == 44100 and abs(audio.size / rate - float(headers["x-audio-duration"])) < 2e-3


def test_sse_chunks_carry_the_format(stack: Stack) -> None:
    response = form_post(stack.base_url, "/synthesize/sse",
                         {"text": "Alpha speaks. Beta answers.", "voice": "default", "seed": 2, "format": "opus"})
    events = parse_sse(response.text)
    chunks = [json.loads(data) for name, data in events if name == "chunk"]
    assert len(chunks) == 2
    for chunk in chunks:
        assert chunk["format"] == "opus" and chunk["sample_rate"] == 48000
        audio, rate = decode_any(base64.b64decode(chunk["audio"]), "opus")
        assert rate == 48000 and abs(audio.size / rate - chunk["duration"]) < 2e-3


def test_tts_and_rvc_routes_take_formats_too(stack: Stack) -> None:
    tts = form_post(stack.base_url, "/tts", {"text": "Just speech.", "voice": "default", "seed": 1, "format": "flac",
                                             "sample_rate": 8000})
    assert tts.status_code == 200, tts.text
    assert decode_any(tts.content, "flac")[1] == 8000
    speech = espeak_wav("Convert me.")
    converted = form_post(stack.base_url, "/rvc", {"format": "aac", "f0_method": "pm"},
                          {"audio": ("in.wav", speech, "audio/wav")})
    assert converted.status_code == 200, converted.text
    audio, rate = decode_any(converted.content, "aac")
    assert rate == 44100 and audio.size > 0
