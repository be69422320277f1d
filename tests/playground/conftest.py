"""The playground in a real browser: Debian's chromium driven by Playwright against the real stack.

Playwright's own browser download is never used (it is not reachable here and CI installs the distro's
``chromium``); the tests launch the system executable with a fresh profile per session.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import uvicorn
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from rvc.api.app import create_app
from rvc.device import PartPlacement
from rvc.processing.defaults_store import DefaultsStore
from rvc.processing.services import VoiceServices
from rvc.settings import load_settings
from rvc.storage import open_storage
from tests.conftest import free_port
from tests.stack import VOICE, Stack, running_stack

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    # a fake microphone (a beep) that needs no permission prompt, for the recording test
    "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
]
DESKTOP = {"width": 1280, "height": 1000}
API_KEY = "playground-test-key"


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("playground_stack")) as running:
        try:
            yield running
        finally:
            # the Triton test restarts the server and puts the new one here; running_stack stops the first
            running.triton.stop()


@pytest.fixture(scope="package")
def playwright_driver() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="package")
def browser(playwright_driver: Playwright) -> Iterator[Browser]:
    executable = CHROMIUM if CHROMIUM.is_file() else shutil.which("chromium")
    if executable is None:
        raise RuntimeError("chromium is not installed: run scripts/setup_env.sh --test (apt install chromium)")
    # launch() starts from a fresh temporary user data dir: no profile, cache or permission from another run
    launched = playwright_driver.chromium.launch(executable_path=str(executable), headless=True, args=CHROMIUM_ARGS)
    yield launched
    launched.close()


@pytest.fixture()
def context(browser: Browser) -> Iterator[BrowserContext]:
    created = browser.new_context(viewport=DESKTOP, permissions=["microphone"])
    yield created
    created.close()


@pytest.fixture()
def page(context: BrowserContext, stack: Stack) -> Page:
    """The playground loaded, its first /health and /status rendered and its server features read."""
    opened = context.new_page()
    console_errors: list[str] = []
    opened.on("pageerror", lambda error: console_errors.append(str(error)))
    opened.goto(f"{stack.base_url}/")
    opened.wait_for_selector("body[data-ready='true']", timeout=30_000)
    opened.wait_for_selector("#status[data-health='ready']", timeout=30_000)
    opened.console_errors = console_errors  # type: ignore[attr-defined]  # the tests read the page's collected errors from the page
    return opened


class IdleSpeech:
    """A Spark-TTS stand-in that is ready and never asked to speak (the API-key page test needs no audio)."""

    async def start(self) -> None: ...
    async def close(self) -> None: ...

    async def ready(self) -> bool:
        return True

    def describe(self) -> dict[str, Any]:
        return {"address": "idle-speech", "model": "spark_tts", "requests": 0}

    def placements(self) -> tuple[PartPlacement, ...]:
        return ()

    async def speak(self, *args: object, **kwargs: object) -> np.ndarray:
        raise AssertionError("the API-key test synthesises nothing")

    async def unload_models(self) -> None: ...
    async def load_models(self) -> None: ...

    async def speaker_cache(self) -> dict[str, Any]:
        return {}


class IdleVoice:
    """An RVC pool stand-in with one idle worker."""

    async def start(self) -> None: ...
    async def close(self) -> None: ...

    def ready(self) -> bool:
        return True

    def describe(self) -> dict[str, Any]:
        worker = {"worker_id": 0, "pid": 1, "state": "idle", "jobs_done": 0, "voices": [VOICE]}
        return {"num_workers": 1, "workers": [worker], "queue_depth": 0, "running": 0, "voices": [VOICE]}

    def placements(self) -> tuple[PartPlacement, ...]:
        return ()

    async def convert(self, *args: object, **kwargs: object) -> tuple[np.ndarray, int]:
        raise AssertionError("the API-key test converts nothing")

    async def ensure_voice(self, name: str) -> None:
        raise AssertionError("the API-key test loads no voice")

    async def suspend(self) -> None: ...


@pytest.fixture(scope="package")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real app with API_KEYS set, over idle backends, under uvicorn on loopback; yields its base URL."""
    root = tmp_path_factory.mktemp("keyed")
    settings = load_settings(
        api_keys=API_KEY, state_dir=root / "state", voices_dir=root / "voices", run_dir=root / "run",
        weights_dir=root / "weights", assets_dir=root / "assets", spark_model_dir=root / "spark",
        api_port=free_port(),
    )
    services = VoiceServices(
        settings, speech=IdleSpeech(), voice=IdleVoice(), store=DefaultsStore(open_storage(None, state_dir=settings.state_dir, voices_dir=None))
    )
    app = create_app(settings, services=services)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=settings.api_port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="uvicorn-keyed", daemon=True)
    thread.start()
    base_url = f"http://127.0.0.1:{settings.api_port}"
    deadline = time.monotonic() + 30
    while not httpx_ready(base_url):
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the API-key test server did not start")
        time.sleep(0.1)
    try:
        yield base_url
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def httpx_ready(base_url: str) -> bool:
    try:
        return httpx.get(f"{base_url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
