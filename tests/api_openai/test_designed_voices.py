"""Designed voices on the real stack: POST /voices generates once from gender/pitch/speed_level and a
seed, keeps the 32 global tokens, and every request with the voice conditions on them."""

from __future__ import annotations

import asyncio
import time

import httpx
import numpy as np

from rvc.grpc.client import AsyncTritonSparkClient, Speaker, TTSParams
from rvc.processing.voices import VoiceStore
from rvc.storage import open_storage
from tests.api.conftest import decode
from tests.api_openai.conftest import TIMEOUT, form_post, save_voice
from tests.stack import Stack

TEXT = "Designed voices keep their voice."
DESIGN = {"gender": "female", "pitch": "high", "speed_level": "low"}


def stored_tokens(stack: Stack, name: str) -> tuple[int, ...]:
    """The voice's global tokens as a restarted gateway reads them (a new store on the same database)."""
    database = open_storage(stack.settings.database_url, state_dir=stack.settings.state_dir, voices_dir=None)
    try:
        saved = VoiceStore(database).get(name)
        assert saved.global_tokens is not None and saved.reference_wav.size == 0
        return saved.global_tokens
    finally:
        database.close()


def design(stack: Stack, name: str, seed: int) -> httpx.Response:
    return form_post(stack.base_url, "/voices", {"name": name, **DESIGN, "seed": seed, "rvc_model": "none"})


def test_designing_with_a_seed_is_repeatable_and_survives_a_restart(stack: Stack) -> None:
    first = design(stack, "designed", 7)
    assert first.status_code == 201, first.text
    assert first.json()["design"] == {**DESIGN, "seed": 7} and first.json()["reference_seconds"] == 0
    tokens = stored_tokens(stack, "designed")
    assert len(tokens) == 32 and all(0 <= token < 4096 for token in tokens)
    assert design(stack, "designed-again", 7).status_code == 201
    assert stored_tokens(stack, "designed-again") == tokens
    assert design(stack, "designed-other", 8).status_code == 201
    assert stored_tokens(stack, "designed-other") != tokens
    assert design(stack, "designed", 7).status_code == 409


def test_a_designed_voice_keeps_its_global_tokens_whatever_the_seed(stack: Stack) -> None:
    if httpx.get(f"{stack.base_url}/voices/designed").status_code == 404:
        assert design(stack, "designed", 7).status_code == 201
    tokens = stored_tokens(stack, "designed")
    for seed in (1, 2):
        response = form_post(stack.base_url, "/synthesize", {"text": TEXT, "voice": "designed", "seed": seed})
        assert response.status_code == 200, response.text
        assert decode(response.content)[0].size > 0

    async def spoken_with(seed: int) -> np.ndarray:
        async with AsyncTritonSparkClient(stack.settings.triton_grpc_url, timeout_s=TIMEOUT) as client:
            _, used = await client.speak_in_voice(
                TEXT, Speaker(global_tokens=tokens), params=TTSParams(seed=seed, max_new_tokens=120)
            )
            return used

    for seed in (1, 2):  # what Triton vocoded with: the stored tokens, not a new voice
        assert tuple(asyncio.run(spoken_with(seed)).tolist()) == tokens


def test_requests_may_design_a_voice_per_call(stack: Stack) -> None:
    response = form_post(stack.base_url, "/synthesize", {"text": TEXT, "gender": "male", "seed": 3, "skip_rvc": "true"})
    assert response.status_code == 200, response.text
    body = {"model": "tts-1", "input": TEXT, "voice": "alloy", "response_format": "wav", **DESIGN, "seed": 3}
    openai = httpx.post(f"{stack.base_url}/v1/audio/speech", json=body, timeout=TIMEOUT)
    assert openai.status_code == 200, openai.text


def test_bad_attributes_get_a_400_naming_the_field_and_the_allowed_values(stack: Stack) -> None:
    bad = form_post(stack.base_url, "/voices", {"name": "bad", "gender": "robot"})
    assert bad.status_code == 400
    error = bad.json()["error"]
    assert error["field"] == "gender" and "'female' or 'male'" in error["message"], error
    level = form_post(stack.base_url, "/synthesize", {"text": TEXT, "gender": "male", "pitch": "loud"})
    assert level.status_code == 400 and level.json()["error"]["field"] == "pitch"
    assert "'very_low', 'low', 'moderate', 'high' or 'very_high'" in level.json()["error"]["message"]
    alone = form_post(stack.base_url, "/synthesize", {"text": TEXT, "speed_level": "high"})
    assert alone.status_code == 400 and alone.json()["error"]["field"] == "gender"
    assert "female or male" in alone.json()["error"]["message"]
    body = {"model": "tts-1", "input": TEXT, "voice": "alloy", "speed_level": "fast"}
    openai = httpx.post(f"{stack.base_url}/v1/audio/speech", json=body, timeout=TIMEOUT)
    assert openai.status_code == 400 and openai.json()["error"]["param"] == "speed_level", openai.text
    both = form_post(stack.base_url, "/voices", {"name": "both", "gender": "male"},
                     {"reference_audio": ("ref.wav", b"RIFF", "audio/wav")})
    assert both.status_code == 400 and both.json()["error"]["field"] == "gender"


def test_a_saved_clip_is_tokenized_once_and_then_spoken_from_its_stored_tokens(stack: Stack, reference_wav: bytes) -> None:
    assert save_voice(stack, "clipped", reference_wav, rvc_model="none").status_code == 201
    fields = {"text": TEXT, "voice": "clipped", "seed": 3}
    from_clip = form_post(stack.base_url, "/synthesize", fields)  # sends the clip, stores its tokens meanwhile
    assert from_clip.status_code == 200, from_clip.text
    database = open_storage(stack.settings.database_url, state_dir=stack.settings.state_dir, voices_dir=None)
    try:
        deadline = time.monotonic() + 120
        while (saved := VoiceStore(database).get("clipped")).tokens is None and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        database.close()
    assert saved.tokens is not None and saved.tokens.semantic_tokens

    async def tokenized() -> tuple[np.ndarray, np.ndarray]:
        async with AsyncTritonSparkClient(stack.settings.triton_grpc_url, timeout_s=TIMEOUT) as client:
            return await client.tokenize(saved.reference_wav)

    global_tokens, semantic = asyncio.run(tokenized())
    assert saved.tokens.global_tokens == tuple(global_tokens.tolist())
    assert saved.tokens.semantic_tokens == tuple(semantic.tolist())
    from_tokens = form_post(stack.base_url, "/synthesize", fields)  # the clip is no longer sent
    assert from_tokens.status_code == 200, from_tokens.text
    np.testing.assert_array_equal(decode(from_tokens.content)[0], decode(from_clip.content)[0])
