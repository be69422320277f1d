"""API_KEYS: enforced on every route but /health and /metrics when set, absent when not."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import openai
import pytest

from rvc.api.auth import load_api_keys
from rvc.errors import ConfigError
from tests.api_openai.conftest import API_KEYS, KeyedApp
from tests.stack import Stack


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.mark.parametrize("path", ["/voices", "/config", "/status", "/v1/models", "/v1/audio/voices", "/openapi.json"])
def test_every_route_needs_a_key(keyed_app: KeyedApp, path: str) -> None:
    missing = httpx.get(f"{keyed_app.base_url}{path}")
    wrong = httpx.get(f"{keyed_app.base_url}{path}", headers=bearer("not-a-key"))
    basic = httpx.get(f"{keyed_app.base_url}{path}", headers={"Authorization": f"Basic {API_KEYS[0]}"})
    for response in (missing, wrong, basic):
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
        error = response.json()["error"]
        assert "Authorization: Bearer" in error["message"]
        if path.startswith("/v1/"):
            assert error["type"] == "authentication_error"  # OpenAI's shape on /v1
        else:
            assert error["status"] == 401 and "request_id" in response.json()
    for key in API_KEYS:
        assert httpx.get(f"{keyed_app.base_url}{path}", headers=bearer(key)).status_code == 200


def test_a_refused_upload_is_not_read(keyed_app: KeyedApp) -> None:
    response = httpx.post(f"{keyed_app.base_url}/synthesize", data={"text": "hi"}, timeout=30)
    assert response.status_code == 401


def test_health_and_metrics_stay_open_and_count_per_key_without_the_key(keyed_app: KeyedApp) -> None:
    assert httpx.get(f"{keyed_app.base_url}/health").status_code in (200, 503)
    httpx.get(f"{keyed_app.base_url}/voices", headers=bearer(API_KEYS[1]))
    httpx.get(f"{keyed_app.base_url}/voices", headers=bearer("intruder"))
    metrics = httpx.get(f"{keyed_app.base_url}/metrics").text
    label = hashlib.sha256(API_KEYS[1].encode()).hexdigest()[:8]
    assert f'voice_api_key_requests_total{{key_id="{label}"}}' in metrics
    assert "voice_api_auth_failures_total" in metrics
    assert not any(key in metrics for key in (*API_KEYS, "intruder"))


def test_the_openai_client_authenticates_with_its_api_key(keyed_app: KeyedApp) -> None:
    good = openai.OpenAI(api_key=API_KEYS[0], base_url=f"{keyed_app.base_url}/v1", max_retries=0, timeout=300)
    assert "tts-1" in {model.id for model in good.models.list()}
    speech = good.audio.speech.create(model="tts-1", voice="alloy", input="Keys work.", response_format="wav",
                                      extra_body={"seed": 1})
    assert speech.content[:4] == b"RIFF"
    bad = openai.OpenAI(api_key="wrong", base_url=f"{keyed_app.base_url}/v1", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()


def test_without_api_keys_nothing_is_asked(stack: Stack) -> None:
    assert httpx.get(f"{stack.base_url}/voices").status_code == 200
    assert httpx.get(f"{stack.base_url}/voices", headers=bearer("anything")).status_code == 200
    assert "voice_api_key_requests_total{" not in httpx.get(f"{stack.base_url}/metrics").text


def test_api_keys_setting_reads_a_list_or_a_file(tmp_path: Path) -> None:
    assert load_api_keys(None) == () and load_api_keys("  ") == ()
    assert load_api_keys("a, b,,a") == ("a", "b")
    keys = tmp_path / "keys"
    keys.write_text("# comment\none\n\ntwo\n")
    assert load_api_keys(str(keys)) == ("one", "two")
    with pytest.raises(ConfigError, match="API_KEYS"):
        load_api_keys(str(tmp_path / "missing"))
    (tmp_path / "empty").write_text("# nothing\n")
    with pytest.raises(ConfigError, match="no key"):
        load_api_keys(str(tmp_path / "empty"))
