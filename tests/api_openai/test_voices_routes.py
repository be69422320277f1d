"""Saved voices over HTTP on the real stack: CRUD, restart, voice= vs upload, per-request overrides."""

from __future__ import annotations

import httpx
import numpy as np

from rvc.processing.voices import VoiceStore
from rvc.storage import SEEDED_MARKER, Markers, open_storage
from tests.api.conftest import decode
from tests.api_openai.conftest import SECOND_MODEL, form_post, save_voice, upload
from tests.stack import Stack

TEXT = "Saved voices speak."


def test_demo_assets_register_a_default_voice(stack: Stack) -> None:
    voice = httpx.get(f"{stack.base_url}/voices/default").json()
    assert voice["name"] == "default" and voice["rvc_model"] is None  # RVC_MODEL at request time
    assert voice["reference_seconds"] == 3.0 and "demo" in voice["description"]
    database = open_storage(stack.settings.database_url, state_dir=stack.settings.state_dir, voices_dir=None)
    try:
        assert Markers(database).get(SEEDED_MARKER) is not None
    finally:
        database.close()
    response = form_post(stack.base_url, "/synthesize", {"text": TEXT, "voice": "default", "seed": 1})
    assert response.status_code == 200, response.text
    assert decode(response.content)[1] == 40000


def test_crud_round_trip_survives_a_new_store_on_the_same_database(stack: Stack, reference_wav: bytes) -> None:
    base = stack.base_url
    created = save_voice(stack, "crud", reference_wav, reference_text="the reference", pitch_shift=4,
                         f0_method="pm", description="first")
    assert created.status_code == 201, created.text
    record = created.json()
    assert record["defaults"]["pitch_shift"] == 4 and record["defaults"]["f0_method"] == "pm"
    assert record["reference_text"] == "the reference" and record["reference_seconds"] > 1
    assert "crud" in [voice["name"] for voice in httpx.get(f"{base}/voices").json()["voices"]]
    clobber = save_voice(stack, "crud", reference_wav)
    assert clobber.status_code == 409 and "overwrite" in clobber.json()["error"]["message"]

    patched = httpx.patch(f"{base}/voices/crud", data={"protect": "0.1", "rvc_model": SECOND_MODEL}, timeout=60)
    assert patched.status_code == 200, patched.text
    assert patched.json()["defaults"]["protect"] == 0.1 and patched.json()["defaults"]["pitch_shift"] == 4
    assert patched.json()["rvc_model"] == SECOND_MODEL

    database = open_storage(stack.settings.database_url, state_dir=stack.settings.state_dir, voices_dir=None)
    restarted = VoiceStore(database)  # what the service (or another gateway) reads after a restart
    again = restarted.record("crud")
    assert again.model_dump() == patched.json()
    assert abs(restarted.get("crud").reference_wav.size / 16000 - record["reference_seconds"]) < 1e-3

    deleted = httpx.delete(f"{base}/voices/crud")
    assert deleted.status_code == 200 and deleted.json() == {"deleted": "crud"}
    assert httpx.get(f"{base}/voices/crud").status_code == 404
    assert VoiceStore(database).find("crud") is None
    database.close()


def test_voice_and_the_same_uploaded_reference_give_the_same_audio(stack: Stack, reference_wav: bytes) -> None:
    assert save_voice(stack, "same", reference_wav, overwrite="true").status_code == 201
    by_name = form_post(stack.base_url, "/synthesize", {"text": TEXT, "voice": "same", "seed": 21})
    by_upload = form_post(stack.base_url, "/synthesize", {"text": TEXT, "seed": 21}, upload(reference_wav))
    assert by_name.status_code == by_upload.status_code == 200, by_name.text
    np.testing.assert_array_equal(decode(by_name.content)[0], decode(by_upload.content)[0])


def test_voice_defaults_apply_and_request_fields_override_them_once(stack: Stack, reference_wav: bytes) -> None:
    """A no-RVC voice answers at 16 kHz; rvc_model in one request converts, the next is 16 kHz again."""
    assert save_voice(stack, "plain", reference_wav, rvc_model="none", overwrite="true").status_code == 201
    plain = form_post(stack.base_url, "/synthesize", {"text": TEXT, "voice": "plain", "seed": 3})
    assert plain.headers["X-Sample-Rate"] == "16000" and float(plain.headers["X-RVC-Time"]) == 0.0
    converted = form_post(stack.base_url, "/synthesize",
                          {"text": TEXT, "voice": "plain", "seed": 3, "rvc_model": SECOND_MODEL})
    assert converted.status_code == 200, converted.text
    assert converted.headers["X-Sample-Rate"] == "40000" and float(converted.headers["X-RVC-Time"]) > 0
    again = form_post(stack.base_url, "/synthesize", {"text": TEXT, "voice": "plain", "seed": 3})
    np.testing.assert_array_equal(decode(again.content)[0], decode(plain.content)[0])


def test_a_voice_bound_to_an_unloaded_model_loads_it_on_first_use(stack: Stack, reference_wav: bytes) -> None:
    assert save_voice(stack, "second", reference_wav, rvc_model=f"{SECOND_MODEL}.pth", overwrite="true").status_code == 201
    with_second = form_post(stack.base_url, "/synthesize", {"text": TEXT, "voice": "second", "seed": 21})
    assert with_second.status_code == 200, with_second.text
    assert SECOND_MODEL in httpx.get(f"{stack.base_url}/status").json()["rvc"]["voices"]
    with_default = form_post(stack.base_url, "/synthesize", {"text": TEXT, "seed": 21}, upload(reference_wav))
    assert not np.array_equal(decode(with_second.content)[0], decode(with_default.content)[0])


def test_voice_still_accepts_an_rvc_model_name_as_the_seed_did(stack: Stack, reference_wav: bytes) -> None:
    legacy = form_post(stack.base_url, "/synthesize", {"text": TEXT, "voice": "SilverWolf_e300_s6600", "seed": 21},
                       upload(reference_wav))
    modern = form_post(stack.base_url, "/synthesize", {"text": TEXT, "rvc_model": "SilverWolf_e300_s6600.pth",
                                                       "seed": 21}, upload(reference_wav))
    assert legacy.status_code == modern.status_code == 200, legacy.text
    np.testing.assert_array_equal(decode(legacy.content)[0], decode(modern.content)[0])


def test_rvc_route_uses_the_voice_model_and_parameters(stack: Stack, reference_wav: bytes) -> None:
    from tests.api.conftest import espeak_wav

    speech = espeak_wav("Convert me.")
    files = {"audio": ("in.wav", speech, "audio/wav")}
    response = form_post(stack.base_url, "/rvc", {"voice": "default", "f0_method": "pm"}, files)
    assert response.status_code == 200, response.text
    assert response.headers["X-Sample-Rate"] == "40000"
    refused = form_post(stack.base_url, "/rvc", {"voice": "plain"}, files)
    assert refused.status_code == 400 and "rvc_model" in refused.json()["error"]["message"]
