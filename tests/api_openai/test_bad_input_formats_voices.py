"""Bad formats, rates, speeds, voices, names and clips get a 4xx that says what to change."""

from __future__ import annotations

import base64

import httpx
import numpy as np
import pytest

from tests.api.conftest import wav_bytes
from tests.api_openai.conftest import form_post, save_voice, upload
from tests.stack import Stack

TEXT = "Hello."


def tone(seconds: float, rate: int = 16000) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    return wav_bytes((0.3 * np.sin(2 * np.pi * 150 * t)).astype(np.float32), rate)


@pytest.mark.parametrize(
    ("fields", "status", "field", "words"),
    [
        ({"format": "wma"}, 400, "format", ["mp3", "flac"]),
        ({"speed": "5"}, 400, "speed", ["4"]),
        ({"speed": "0"}, 400, "speed", ["0.25"]),
        ({"sample_rate": "4000"}, 400, "sample_rate", ["8000"]),
        ({"sample_rate": "96000"}, 400, "sample_rate", ["48000"]),
        ({"format": "mp3", "sample_rate": "40000"}, 400, "sample_rate", ["44100"]),
        ({"voice": "nobody"}, 400, "voice", ["nobody", "saved voices", "default", "SilverWolf_e300_s6600"]),
        ({"voice": "../etc"}, 400, "voice", ["invalid voice name"]),
        ({"rvc_model": "Missing"}, 400, "rvc_model", ["Missing", "SilverWolf_e300_s6600"]),
        ({"voice": "default", "rvc_model": "../x"}, 400, "rvc_model", ["rvc_model", "../x", "not an RVC model"]),
    ],
    ids=["format", "speed-high", "speed-zero", "rate-low", "rate-high", "mp3-rate", "unknown-voice",
         "voice-traversal", "unknown-model", "model-traversal"],
)
def test_synthesize_rejects_bad_output_and_voice_fields(
    stack: Stack, fields: dict, status: int, field: str, words: list[str]
) -> None:
    response = form_post(stack.base_url, "/synthesize", {"text": TEXT, "voice": "default", **fields})
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["field"] == field
    for word in words:
        assert word in error["message"], error["message"]


@pytest.mark.parametrize("name", ["../escape", ".hidden", "a" * 65, "sp ace", "x/y"])
def test_voice_names_are_validated(stack: Stack, reference_wav: bytes, name: str) -> None:
    response = save_voice(stack, name, reference_wav)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["field"] == "name"
    assert not any(path.name == name for path in stack.settings.voices_dir.parent.rglob("*"))


def test_bad_names_in_the_path_are_refused_or_unknown(stack: Stack) -> None:
    assert httpx.get(f"{stack.base_url}/voices/..hidden").status_code == 400
    assert httpx.delete(f"{stack.base_url}/voices/%2E%2E").status_code in (400, 404)
    assert httpx.get(f"{stack.base_url}/voices/nobody").status_code == 404


def test_oversized_and_bad_clips_are_refused_when_saving(stack: Stack) -> None:
    too_long = save_voice(stack, "long", tone(31.0))
    assert too_long.status_code == 400 and "limit is 30 s" in too_long.json()["error"]["message"]
    too_big = save_voice(stack, "big", b"\0" * (stack.settings.max_upload_bytes + 1024))
    assert too_big.status_code == 413 and "MAX_UPLOAD_MB" in too_big.json()["error"]["message"]
    silent = save_voice(stack, "silent", wav_bytes(np.zeros(32000, np.float32), 16000))
    assert silent.status_code == 400 and "silent" in silent.json()["error"]["message"]
    missing = form_post(stack.base_url, "/voices", {"name": "noclip"})
    assert missing.status_code == 400 and missing.json()["error"]["field"] == "reference_audio"
    model = save_voice(stack, "badmodel", tone(2.0), rvc_model="Missing")
    assert model.status_code == 400 and model.json()["error"]["field"] == "rvc_model"
    assert not {"long", "big", "silent", "noclip", "badmodel"} & set(
        voice["name"] for voice in httpx.get(f"{stack.base_url}/voices").json()["voices"]
    )


def test_patch_and_delete_of_an_unknown_voice_are_404(stack: Stack) -> None:
    assert httpx.patch(f"{stack.base_url}/voices/ghost", data={"protect": "0.2"}).status_code == 404
    assert httpx.delete(f"{stack.base_url}/voices/ghost").status_code == 404


def test_openai_route_limits_in_openai_shape(stack: Stack) -> None:
    huge = base64.b64encode(b"\0" * stack.settings.max_upload_bytes).decode()
    response = httpx.post(f"{stack.base_url}/v1/audio/speech", timeout=120, json={
        "model": "tts-1", "input": TEXT, "voice": "alloy", "reference_audio": huge,
    })
    assert response.status_code == 413
    assert response.json()["error"]["type"] == "invalid_request_error"
    long_clip = base64.b64encode(tone(31.0)).decode()
    response = httpx.post(f"{stack.base_url}/v1/audio/speech", timeout=120, json={
        "model": "tts-1", "input": TEXT, "voice": "alloy", "reference_audio": long_clip,
    })
    assert response.status_code == 400 and response.json()["error"]["param"] == "reference_audio"
    not_json = httpx.post(f"{stack.base_url}/v1/audio/speech", content=b"{oops", timeout=30,
                          headers={"content-type": "application/json"})
    assert not_json.status_code == 400 and "message" in not_json.json()["error"]


def test_the_uploaded_field_overrides_the_voice_for_one_request_only(stack: Stack, reference_wav: bytes) -> None:
    """An upload with voice= uses the upload; the saved voice itself is unchanged."""
    before = httpx.get(f"{stack.base_url}/voices/default").json()
    response = form_post(stack.base_url, "/synthesize", {"text": TEXT, "voice": "default", "seed": 21,
                                                         "pitch_shift": 3}, upload(reference_wav))
    assert response.status_code == 200, response.text
    assert httpx.get(f"{stack.base_url}/voices/default").json() == before
