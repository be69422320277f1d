"""Text normalisation on the real stack: on by default, the spoken text returned, ``normalize=false`` as written."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from urllib.parse import unquote

import httpx
import openai
import pytest

from rvc.api.encoding import NORMALIZED_HEADER_MAX, normalized_text_headers
from tests.api.conftest import parse_sse
from tests.stack import VOICE, Stack

TIMEOUT = 300
ENGLISH = "Dr. Smith paid $3.50 on 2026-12-01."
ENGLISH_SPOKEN = "Doctor Smith paid three dollars and fifty cents on December first, twenty twenty-six."
CHINESE = "第3章：价格是3.50元，12:30开始。"
CHINESE_SPOKEN = "第三章：价格是三元五角，十二点三十分开始。"


def ref(body: bytes) -> dict:
    return {"reference_audio": ("ref.wav", body, "audio/wav")}


def post(stack: Stack, path: str, reference_wav: bytes, **data: str) -> httpx.Response:
    return httpx.post(f"{stack.base_url}{path}", data=data, files=ref(reference_wav), timeout=TIMEOUT)


@pytest.mark.parametrize(("path", "text", "spoken"), [("/synthesize", ENGLISH, ENGLISH_SPOKEN),
                                                      ("/tts", CHINESE, CHINESE_SPOKEN)])
def test_text_is_normalised_by_default_and_returned_in_a_header(
    stack: Stack, reference_wav: bytes, path: str, text: str, spoken: str
) -> None:
    response = post(stack, path, reference_wav, text=text, seed="3")
    assert response.status_code == 200, response.text
    header = response.headers["X-Normalized-Text"]
    assert header.isascii()
    assert unquote(header) == spoken
    assert "X-Normalized-Text-Truncated" not in response.headers
    assert response.headers["X-Sentences"] == "1"


def test_english_header_stays_readable(stack: Stack, reference_wav: bytes) -> None:
    response = post(stack, "/tts", reference_wav, text="Pay $5.")
    assert response.status_code == 200, response.text
    assert response.headers["X-Normalized-Text"] == "Pay five dollars."


def test_normalize_false_sends_the_text_as_written(stack: Stack, reference_wav: bytes) -> None:
    response = post(stack, "/tts", reference_wav, text=ENGLISH, normalize="false")
    assert response.status_code == 200, response.text
    assert "X-Normalized-Text" not in response.headers


def test_sse_start_event_carries_the_spoken_text_and_sentences(stack: Stack, reference_wav: bytes) -> None:
    text = "It is 3 km away. Lunch at 12:30."
    on = post(stack, "/synthesize/sse", reference_wav, text=text, skip_rvc="true")
    off = post(stack, "/synthesize/sse", reference_wav, text=text, skip_rvc="true", normalize="false")
    for response in (on, off):
        assert response.status_code == 200, response.text
    start_on = json.loads(parse_sse(on.text)[0][1])
    start_off = json.loads(parse_sse(off.text)[0][1])
    assert parse_sse(on.text)[0][0] == "start"
    assert start_on["normalized_text"] == "It is three kilometers away. Lunch at twelve thirty."
    assert start_on["sentences"] == ["It is three kilometers away.", "Lunch at twelve thirty."]
    assert start_off["normalized_text"] is None
    assert start_off["sentences"] == ["It is 3 km away.", "Lunch at 12:30."]
    chunks = [json.loads(data) for event, data in parse_sse(on.text) if event == "chunk"]
    assert [chunk["text"] for chunk in chunks] == start_on["sentences"]


def test_multipart_stream_has_the_header(stack: Stack, reference_wav: bytes) -> None:
    response = post(stack, "/synthesize/stream", reference_wav, text="Room 101.", skip_rvc="true")
    assert response.status_code == 200, response.text
    assert response.headers["X-Normalized-Text"] == "Room one hundred and one."


@pytest.mark.parametrize("path", ["/synthesize", "/tts", "/synthesize/sse", "/synthesize/stream"])
def test_a_bad_normalize_value_is_a_400_naming_the_field(stack: Stack, reference_wav: bytes, path: str) -> None:
    response = post(stack, path, reference_wav, text=ENGLISH, normalize="maybe")
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["field"] == "normalize"
    assert "normalize" in error["message"]


def test_rvc_has_no_text_and_no_normalize_field(stack: Stack, reference_wav: bytes) -> None:
    schema = httpx.get(f"{stack.base_url}/openapi.json").json()
    forms = schema["components"]["schemas"]
    rvc_form = next(body for name, body in forms.items() if name.startswith("Body_rvc"))
    synthesize_form = next(body for name, body in forms.items() if name.startswith("Body_synthesize_synthesize_post"))
    assert "normalize" not in rvc_form["properties"]
    assert synthesize_form["properties"]["normalize"]["anyOf"][0]["type"] == "boolean"


@pytest.fixture(scope="module")
def client(stack: Stack) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        api_key="not-needed", base_url=f"{stack.base_url}/v1", max_retries=0, timeout=TIMEOUT
    ) as client:
        yield client


def speech(client: openai.OpenAI, reference_wav: bytes, **extra: object) -> httpx.Response:
    """The raw response of the official client's speech call (headers included)."""
    body = {"reference_audio": base64.b64encode(reference_wav).decode("ascii"), "seed": 2, **extra}
    raw = client.audio.speech.with_raw_response.create(
        model="tts-1", voice=VOICE, input=CHINESE, response_format="wav", extra_body=body
    )
    return raw.http_response


def test_openai_extra_body_normalize(client: openai.OpenAI, reference_wav: bytes) -> None:
    default = speech(client, reference_wav)
    assert unquote(default.headers["X-Normalized-Text"]) == CHINESE_SPOKEN
    as_written = speech(client, reference_wav, normalize=False)
    assert "X-Normalized-Text" not in as_written.headers
    with pytest.raises(openai.BadRequestError) as caught:
        speech(client, reference_wav, normalize="maybe")
    assert caught.value.response.json()["error"]["param"] == "normalize"


def test_a_long_spoken_text_is_cut_with_a_marker() -> None:
    text = "价格是三元五角。" * 200
    headers = normalized_text_headers(text)
    value = headers["X-Normalized-Text"]
    assert headers["X-Normalized-Text-Truncated"] == "true"
    assert len(value) <= NORMALIZED_HEADER_MAX and value.isascii()
    decoded = unquote(value)
    assert decoded.endswith("…") and text.startswith(decoded[:-1])
    assert normalized_text_headers(None) == {}
    assert normalized_text_headers("50% off") == {"X-Normalized-Text": "50%25 off"}
