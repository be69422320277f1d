"""One real stack for every test in this folder (tritonserver, 2 RVC workers, the app on loopback).

The demo weights folder also holds a second RVC model, ``Second``, so saved
voices can bind a model the pool has not loaded yet. ``keyed_app`` is a
second, small app (1 worker) with API_KEYS set, against the same Triton.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import espeak_wav, reference_wav  # noqa: F401 - the session fixture, shared
from tests.conftest import free_port
from tests.stack import Stack, running_stack, serve_app

SECOND_MODEL = "Second"
API_KEYS = ("test-key-alpha", "test-key-beta")
TIMEOUT = 300


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    from rvc.infer.demo_assets import write_demo_rvc_assets

    root = tmp_path_factory.mktemp("openai_stack")
    write_demo_rvc_assets(
        root / "assets_root" / "weights", root / "scratch_assets", voice_name=SECOND_MODEL, seed=1
    )
    with running_stack(root) as running:
        yield running


@dataclass
class KeyedApp:
    base_url: str
    settings: object
    app: object


@pytest.fixture(scope="package")
def keyed_app(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeyedApp]:
    root = tmp_path_factory.mktemp("keyed")
    key_file = root / "keys.txt"
    key_file.write_text(f"# two keys\n{API_KEYS[0]}\n\n{API_KEYS[1]}\n")
    settings = stack.settings.model_copy(update={
        "api_keys": str(key_file), "api_port": free_port(), "rvc_workers": 1,
        "state_dir": root / "state", "voices_dir": root / "voices", "run_dir": root / "run",
    })
    with serve_app(settings) as (app, base_url):
        yield KeyedApp(base_url, settings, app)


@pytest.fixture(scope="package")
def other_reference() -> bytes:
    return espeak_wav("A different speaker reads a different sentence, slowly.")


def upload(data: bytes, name: str = "ref.wav") -> dict:
    return {"reference_audio": (name, data, "audio/wav")}


def form_post(base_url: str, path: str, data: dict, files: dict | None = None, **kwargs: object) -> httpx.Response:
    fields = {key: str(value) for key, value in data.items()}
    return httpx.post(f"{base_url}{path}", data=fields, files=files, timeout=TIMEOUT, **kwargs)


def save_voice(stack: Stack, name: str, reference: bytes, **fields: object) -> httpx.Response:
    return form_post(stack.base_url, "/voices", {"name": name, **fields}, upload(reference))


def voices_folder(stack: Stack) -> Path:
    return stack.settings.voices_dir
