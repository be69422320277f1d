"""Bad input gets a 4xx whose message says what to fix; the service stays up."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from tests.api.conftest import wav_bytes
from tests.stack import Stack

TEXT = "Hello."


def send(stack: Stack, path: str, data: dict[str, str], files: dict | None) -> httpx.Response:
    return httpx.post(f"{stack.base_url}{path}", data=data, files=files, timeout=120)


def ref(body: bytes, name: str = "ref.wav") -> dict:
    return {"reference_audio": (name, body, "audio/wav")}


def tone(seconds: float, rate: int = 16000) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    return wav_bytes((0.3 * np.sin(2 * np.pi * 150 * t)).astype(np.float32), rate)


CASES = [
    # (id, data, files-maker, status, field, words in the message)
    ("missing text", {}, "ref", 400, "text", ["text"]),
    ("empty text", {"text": "   "}, "ref", 400, "text", ["empty"]),
    ("unspeakable text", {"text": "?!..."}, "ref", 400, "text", ["speakable"]),
    ("text over the limit", {"text": "a" * 5001}, "ref", 400, "text", ["5001", "limit"]),
    ("pitch_shift too high", {"text": TEXT, "pitch_shift": "25"}, "ref", 400, "pitch_shift", ["24"]),
    ("pitch_shift not a number", {"text": TEXT, "pitch_shift": "up"}, "ref", 400, "pitch_shift", ["integer"]),
    ("unknown f0_method", {"text": TEXT, "f0_method": "yin"}, "ref", 400, "f0_method", ["rmvpe"]),
    ("index_rate over 1", {"text": TEXT, "index_rate": "1.5"}, "ref", 400, "index_rate", ["1"]),
    ("protect over 0.5", {"text": TEXT, "protect": "0.6"}, "ref", 400, "protect", ["0.5"]),
    ("rms_mix_rate negative", {"text": TEXT, "rms_mix_rate": "-0.1"}, "ref", 400, "rms_mix_rate", ["0"]),
    ("filter_radius over 7", {"text": TEXT, "filter_radius": "8"}, "ref", 400, "filter_radius", ["7"]),
    ("unknown rvc_profile", {"text": TEXT, "rvc_profile": "2025"}, "ref", 400, "rvc_profile", ["2026", "2024"]),
    ("temperature zero", {"text": TEXT, "temperature": "0"}, "ref", 400, "temperature", ["greater than 0"]),
    ("unreadable audio", {"text": TEXT}, "garbage", 400, "reference_audio", ["could not be decoded"]),
    ("empty audio file", {"text": TEXT}, "empty", 400, "reference_audio", ["empty"]),
    ("zero-length wav", {"text": TEXT}, "zero", 400, "reference_audio", ["no samples"]),
    ("unsupported format", {"text": TEXT}, "text-file", 400, "reference_audio", ["could not be decoded"]),
    ("reference too long", {"text": TEXT}, "long", 400, "reference_audio", ["limit is 30 s"]),
    ("reference too short", {"text": TEXT}, "short", 400, "reference_audio", ["at least"]),
    ("silent reference", {"text": TEXT}, "silent", 400, "reference_audio", ["silent"]),
]


def make_files(kind: str, reference: bytes) -> dict | None:
    return {
        "ref": lambda: ref(reference),
        "garbage": lambda: ref(b"RIFF\x10\x00\x00\x00WAVEfmt garbage garbage"),
        "empty": lambda: ref(b""),
        "zero": lambda: ref(wav_bytes(np.zeros(0, np.float32), 16000)),
        "text-file": lambda: ref(b"just some words, not audio at all\n" * 20, "notes.txt"),
        "long": lambda: ref(tone(31.0)),
        "short": lambda: ref(tone(0.2)),
        "silent": lambda: ref(wav_bytes(np.zeros(32000, np.float32), 16000)),
    }[kind]()


@pytest.mark.parametrize(("case", "data", "files", "status", "field", "words"), CASES, ids=[c[0] for c in CASES])
def test_synthesize_rejects_bad_input_with_a_useful_message(
    stack: Stack, reference_wav: bytes, case: str, data: dict, files: str, status: int, field: str,
    words: list[str],
) -> None:
    response = send(stack, "/synthesize", data, make_files(files, reference_wav))
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["field"] == field
    for word in words:
        assert word in error["message"], error["message"]


def test_upload_over_the_size_limit_is_413(stack: Stack) -> None:
    too_big = b"\0" * (stack.settings.max_upload_bytes + 1024)
    response = send(stack, "/synthesize", {"text": TEXT}, ref(too_big))
    assert response.status_code == 413
    assert "MAX_UPLOAD_MB" in response.json()["error"]["message"]


def test_rvc_requires_its_audio_field(stack: Stack, reference_wav: bytes) -> None:
    response = send(stack, "/rvc", {}, {"reference_audio": ("a.wav", reference_wav, "audio/wav")})
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "audio"


def test_unknown_voice_is_404_naming_it(stack: Stack, reference_wav: bytes) -> None:
    response = send(stack, "/synthesize", {"text": TEXT, "voice": "NoSuchVoice"}, ref(reference_wav))
    assert response.status_code in (400, 404), response.text
    assert "NoSuchVoice" in response.json()["error"]["message"]


def test_path_traversal_voice_is_refused(stack: Stack) -> None:
    response = send(stack, "/rvc", {"voice": "../../etc/passwd"}, {"audio": ("a.wav", tone(1.0), "audio/wav")})
    assert response.status_code == 400, response.text


def test_config_rejects_out_of_range_values(stack: Stack) -> None:
    response = httpx.post(f"{stack.base_url}/config", json={"pitch_shift": 99})
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "pitch_shift"
    unknown = httpx.post(f"{stack.base_url}/config", json={"speed": 2})
    assert unknown.status_code == 400


def test_service_is_still_healthy_after_the_battery(stack: Stack) -> None:
    assert httpx.get(f"{stack.base_url}/health").json()["status"] == "ready"
