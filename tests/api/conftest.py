"""The real stack (tritonserver, RVC workers, API over loopback HTTP) on demo assets, once per session."""

# decode, parse_multipart and parse_sse are re-exported for the tests in this folder.

from __future__ import annotations

import io
import shutil
import subprocess
from collections.abc import Iterator

import numpy as np
import pytest
import soundfile as sf

from tests.seed_cli import decode_wav as decode
from tests.seed_cli import parse_multipart, parse_sse
from tests.stack import Stack, running_stack

__all__ = ["decode", "espeak_wav", "parse_multipart", "parse_sse", "wav_bytes"]


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # a small WebSocket idle timeout, so tests/api/test_websocket.py sees a silent client closed quickly
    with running_stack(tmp_path_factory.mktemp("stack"), ws_idle_timeout_s=3.0) as running:
        yield running


def espeak_wav(text: str, voice: str = "en-us") -> bytes:
    """Real speech from espeak-ng (22.05 kHz PCM16 WAV); CI installs it."""
    if shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is not installed: run scripts/setup_env.sh --test (apt install espeak-ng)")
    return subprocess.run(
        ["espeak-ng", "-v", voice, "-s", "150", "--stdout", text], check=True, capture_output=True
    ).stdout


@pytest.fixture(scope="session")
def reference_wav() -> bytes:
    return espeak_wav("This is the reference voice, speaking clearly for a few seconds.")


def wav_bytes(samples: np.ndarray, rate: int, subtype: str = "PCM_16") -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="WAV", subtype=subtype)
    return buffer.getvalue()
