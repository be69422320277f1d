"""/v1/audio/speech takes the contract's tunables strictly and keeps OpenAI's own limits, errors in OpenAI's shape."""

from __future__ import annotations

import httpx
import pytest

from tests.stack import Stack

SPEECH = {"model": "tts-1", "voice": "alloy", "input": "Hello."}


def speech(stack: Stack, **fields: object) -> httpx.Response:
    return httpx.post(f"{stack.base_url}/v1/audio/speech", json={**SPEECH, **fields}, timeout=120)


def openai_error(response: httpx.Response, status: int = 400) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    return error


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("pitch_shift", True, "integer"),
        ("pitch_shift", "3", "integer"),
        ("top_k", 2.5, "integer"),
        ("skip_rvc", "yes", "boolean"),
        ("index_rate", "0.5", "number"),
        ("seed", False, "integer"),
        ("speed", 9, "less than or equal to 4"),
    ],
)
def test_extra_body_tunables_are_strictly_typed(stack: Stack, field: str, value: object, words: str) -> None:
    error = openai_error(speech(stack, **{field: value}))
    assert error["param"] == field
    assert error["message"].count(field) == 1, error["message"]
    assert words in error["message"]


def test_input_over_openais_4096_characters_is_refused(stack: Stack) -> None:
    text = "Words. " * 586  # 4101 characters stripped: over OpenAI's limit, under this stack's MAX_TEXT_CHARS
    assert len(text.strip()) > 4096 and stack.settings.max_text_chars > len(text.strip())
    error = openai_error(speech(stack, input=text))
    assert error["param"] == "input"
    assert error["message"] == (
        f"input is {len(text.strip())} characters; the limit is 4096 (OpenAI's input limit): split it into "
        "several requests"
    )


def test_input_at_the_limit_passes_the_text_check(stack: Stack) -> None:
    """4,096 characters are accepted: the request fails on the next check (the unknown voice), not on input."""
    text = ("Words. " * 600)[:4096]
    error = openai_error(speech(stack, input=text, voice="nobody-saved"))
    assert error["param"] == "voice"


def test_non_finite_numbers_say_must_be_finite(stack: Stack) -> None:
    response = httpx.post(
        f"{stack.base_url}/v1/audio/speech", timeout=30, headers={"content-type": "application/json"},
        content=b'{"model": "tts-1", "voice": "alloy", "input": "Hi.", "protect": Infinity}',
    )
    error = openai_error(response)
    assert (error["param"], error["message"]) == ("protect", "protect: must be a finite number")


def test_malformed_json_names_the_position_and_no_param(stack: Stack) -> None:
    body = b'{"model": "tts-1", "input": oops}'
    response = httpx.post(
        f"{stack.base_url}/v1/audio/speech", content=body, timeout=30, headers={"content-type": "application/json"}
    )
    error = openai_error(response)
    assert error["param"] is None
    assert error["message"] == f"body is not valid JSON (at character {body.index(b'oops')})"


def test_an_unknown_rvc_model_names_rvc_model(stack: Stack) -> None:
    error = openai_error(speech(stack, voice="default", rvc_model="Missing"))
    assert error["param"] == "rvc_model"
    assert error["message"].startswith("rvc_model 'Missing' is not an RVC model"), error["message"]
