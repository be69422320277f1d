"""Errors that say exactly what to fix, once: strict types at entry, one message per field, HTTP-level refusals."""

from __future__ import annotations

import httpx
import pytest

from tests.stack import Stack

TEXT = "Hello."


def ref(body: bytes) -> dict:
    return {"reference_audio": ("ref.wav", body, "audio/wav")}


def error_of(response: httpx.Response, status: int = 400) -> dict:
    assert response.status_code == status, response.text
    return response.json()["error"]


@pytest.mark.parametrize("path", ["/synthesize", "/rvc", "/tts"])
def test_a_bad_field_is_reported_once(stack: Stack, reference_wav: bytes, path: str) -> None:
    files = ref(reference_wav) if path != "/rvc" else {"audio": ("a.wav", reference_wav, "audio/wav")}
    response = httpx.post(
        f"{stack.base_url}{path}", data={"text": TEXT, "pitch_shift": "99", "protect": "0.9"}, files=files, timeout=120
    )
    error = error_of(response)
    assert error["field"] == "pitch_shift"
    assert error["message"].count("pitch_shift") == 1, error["message"]
    assert error["message"].count("protect") == 1, error["message"]


@pytest.mark.parametrize(("field", "value"), [("index_rate", "nan"), ("speed", "inf"), ("pitch_shift", "-Infinity")])
def test_non_finite_form_numbers_say_must_be_finite(stack: Stack, reference_wav: bytes, field: str, value: str) -> None:
    response = httpx.post(f"{stack.base_url}/synthesize", data={"text": TEXT, field: value}, files=ref(reference_wav))
    error = error_of(response)
    assert error["field"] == field
    assert error["message"] == f"{field}: must be a finite number"


def test_non_finite_json_numbers_say_must_be_finite(stack: Stack) -> None:
    response = httpx.post(
        f"{stack.base_url}/config", content=b'{"index_rate": NaN}', headers={"content-type": "application/json"}
    )
    error = error_of(response)
    assert (error["field"], error["message"]) == ("index_rate", "index_rate: must be a finite number")


def test_malformed_json_names_the_position_and_no_field(stack: Stack) -> None:
    body = b'{"pitch_shift": 3,}'
    response = httpx.post(f"{stack.base_url}/config", content=body, headers={"content-type": "application/json"})
    error = error_of(response)
    assert error["field"] is None
    assert error["message"] == f"body is not valid JSON (at character {body.index(b'}')})"


@pytest.mark.parametrize("value", [True, "3", 3.5, None], ids=["bool", "string", "decimal", "null-is-a-no-op"])
def test_json_numbers_are_strict(stack: Stack, value: object) -> None:
    before = httpx.get(f"{stack.base_url}/config").json()["defaults"]["pitch_shift"]
    response = httpx.post(f"{stack.base_url}/config", json={"pitch_shift": value})
    if value is None:
        assert response.status_code == 200, response.text
    else:
        error = error_of(response)
        assert error["field"] == "pitch_shift"
        assert "integer" in error["message"]
    assert httpx.get(f"{stack.base_url}/config").json()["defaults"]["pitch_shift"] == before


def test_form_integers_are_parsed_strictly(stack: Stack, reference_wav: bytes) -> None:
    response = httpx.post(
        f"{stack.base_url}/synthesize", data={"text": TEXT, "pitch_shift": "3.5"}, files=ref(reference_wav)
    )
    error = error_of(response)
    assert error["field"] == "pitch_shift"
    assert "integer" in error["message"]


@pytest.mark.parametrize("field", ["pitch_shift", "text", "voice"])
def test_a_form_field_sent_twice_is_refused(stack: Stack, reference_wav: bytes, field: str) -> None:
    fields = {"text": TEXT, "pitch_shift": "1", "voice": "default"}
    multipart = [(name, (None, value)) for name, value in fields.items()] + [(field, (None, fields[field]))]
    response = httpx.post(
        f"{stack.base_url}/synthesize", files=[*multipart, ("reference_audio", ("r.wav", reference_wav, "audio/wav"))]
    )
    error = error_of(response)
    assert error["field"] == field
    assert error["message"] == f"{field} was sent 2 times; send each field once"


def test_an_unknown_rvc_model_error_names_rvc_model(stack: Stack, reference_wav: bytes) -> None:
    response = httpx.post(
        f"{stack.base_url}/synthesize", data={"text": TEXT, "rvc_model": "Missing"}, files=ref(reference_wav)
    )
    error = error_of(response)
    assert error["field"] == "rvc_model"
    assert error["message"].startswith("rvc_model 'Missing' is not an RVC model in WEIGHTS_DIR"), error["message"]
    assert stack.settings.rvc_model.removesuffix(".pth") in error["message"]


@pytest.mark.parametrize("path", ["/health", "/config", "/v1/models"])
def test_oversized_request_headers_get_431_in_the_json_envelope(stack: Stack, path: str) -> None:
    response = httpx.get(f"{stack.base_url}{path}", headers={"X-Padding": "a" * 10_000})
    assert response.status_code == 431, response.text
    body = response.json()
    error = body["error"]
    code = error["code"]
    assert code == "request_header_too_large"
    assert "limit is 8192" in error["message"]
    if path.startswith("/v1/"):
        assert error["type"] == "invalid_request_error"
    else:
        assert body["request_id"] == response.headers["x-request-id"]


def test_patch_voice_with_a_json_body_is_415_naming_multipart(stack: Stack) -> None:
    before = httpx.get(f"{stack.base_url}/voices/default").json()
    response = httpx.patch(f"{stack.base_url}/voices/default", json={"description": "changed by JSON"})
    error = error_of(response, 415)
    assert "multipart/form-data" in error["message"]
    assert "application/json" in error["message"]
    assert httpx.get(f"{stack.base_url}/voices/default").json() == before


def test_text_limit_of_the_form_routes_is_max_text_chars(stack: Stack, reference_wav: bytes) -> None:
    """4,097 characters pass the form routes' limit (MAX_TEXT_CHARS): the error is the unknown voice that follows."""
    text = "Words. " * 700
    assert stack.settings.max_text_chars >= len(text.strip()) > 4096
    response = httpx.post(f"{stack.base_url}/synthesize", data={"text": text, "voice": "nobody"}, files=ref(reference_wav))
    assert error_of(response)["field"] == "voice"


def test_openapi_schema_carries_the_enforced_constraints(stack: Stack) -> None:
    schema = httpx.get(f"{stack.base_url}/openapi.json").json()
    components = schema["components"]["schemas"]
    form = components["Body_synthesize_synthesize_post"]["properties"]

    def bounds(prop: dict) -> dict:
        (number,) = [option for option in prop.get("anyOf", [prop]) if option.get("type") in ("integer", "number")]
        return {key: number[key] for key in ("minimum", "maximum", "exclusiveMinimum") if key in number}

    assert bounds(form["pitch_shift"]) == {"minimum": -24, "maximum": 24}
    assert bounds(form["temperature"]) == {"exclusiveMinimum": 0, "maximum": 2}
    assert bounds(form["sample_rate"]) == {"minimum": 8000, "maximum": 48000}
    assert form["voice"]["pattern"] == "^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$"
    speech = components["SpeechRequest"]["properties"]
    assert bounds(speech["speed"]) == {"minimum": 0.25, "maximum": 4}
    assert speech["input"]["maxLength"] == 4096
    (path_name,) = schema["paths"]["/voices/{name}"]["patch"]["parameters"]
    assert path_name["schema"]["pattern"] == form["voice"]["pattern"]
