"""Everything a gateway needs, built from settings and owned for the app's lifetime.

``VoiceServices`` ties the Spark-TTS client, the RVC pool, the stored defaults
and the pipeline together, and answers the questions /health and /status ask.
The routes see only this object, so they know nothing about Triton or
processes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from rvc.assets import DEMO_NOTICE, inspect_assets
from rvc.processing.defaults_store import DefaultsStore
from rvc.processing.params import SynthesisDefaults
from rvc.processing.pipeline import SpeechBackend, TTSRVCPipeline, VoiceBackend
from rvc.settings import Settings

__all__ = ["HealthReport", "ManagedSpeech", "ManagedVoice", "VoiceServices"]

logger = logging.getLogger(__name__)


class ManagedSpeech(SpeechBackend, Protocol):
    async def start(self) -> None: ...
    async def close(self) -> None: ...
    async def ready(self) -> bool: ...
    def describe(self) -> dict[str, Any]: ...


class ManagedVoice(VoiceBackend, Protocol):
    async def start(self) -> None: ...
    async def close(self) -> None: ...
    def ready(self) -> bool: ...
    def describe(self) -> dict[str, Any]: ...
    async def convert_timed(
        self, audio: np.ndarray, sample_rate: int, settings: SynthesisDefaults, *, voice: str | None,
        seed: int | None,
    ) -> tuple[np.ndarray, int, dict[str, float]]: ...


@dataclass(frozen=True)
class HealthReport:
    tts_ready: bool
    rvc_ready: bool
    demo_assets: bool
    problems: tuple[str, ...] = field(default=())

    @property
    def status(self) -> str:
        if self.tts_ready and self.rvc_ready:
            return "ready"
        if self.tts_ready or self.rvc_ready:
            return "degraded"
        return "error"


class VoiceServices:
    def __init__(
        self, settings: Settings, *, speech: ManagedSpeech, voice: ManagedVoice, store: DefaultsStore,
        retry_suspect: bool | None = None,
    ) -> None:
        self.settings = settings
        self.speech = speech
        self.voice = voice
        self.store = store
        self.assets = inspect_assets(settings)
        if retry_suspect is None:
            # Random demo weights never emit the end token: every sentence would be retried for nothing.
            retry_suspect = not self.assets.demo
        self.pipeline = TTSRVCPipeline(speech, voice, retry_suspect=retry_suspect)
        self.started_at = time.time()
        self.counts: dict[str, int] = {"requests": 0, "succeeded": 0, "failed": 0, "cancelled": 0}

    @classmethod
    def from_settings(cls, settings: Settings) -> VoiceServices:
        """The production wiring: Triton's asyncio client and the worker pool."""
        from rvc.processing.backends import PoolVoice, TritonSpeech

        store = DefaultsStore(settings.state_dir)
        return cls(settings, speech=TritonSpeech(settings), voice=PoolVoice(settings), store=store)

    async def start(self) -> None:
        if self.assets.demo:
            logger.warning(DEMO_NOTICE)
        # Both start in the background; a part that fails to start leaves the service degraded, not dead.
        results = await asyncio.gather(self.speech.start(), self.voice.start(), return_exceptions=True)
        for name, result in zip(("tts", "rvc"), results, strict=True):
            if isinstance(result, BaseException):
                logger.error("%s backend failed to start: %s", name, result)

    async def close(self) -> None:
        await asyncio.gather(self.speech.close(), self.voice.close(), return_exceptions=True)

    async def health(self) -> HealthReport:
        try:
            tts_ready = await asyncio.wait_for(self.speech.ready(), timeout=2.0)
        except (TimeoutError, OSError):
            tts_ready = False
        rvc_ready = self.voice.ready()
        problems = []
        if not tts_ready:
            problems.append(f"Spark-TTS on Triton ({self.settings.triton_grpc_url}) is not ready")
        if not rvc_ready:
            problems.append("no RVC worker is alive")
        if self.assets.demo:
            problems.append(DEMO_NOTICE)
        return HealthReport(tts_ready, rvc_ready, self.assets.demo, tuple(problems))

    def status(self) -> dict[str, Any]:
        return {
            "uptime_s": round(time.time() - self.started_at, 1),
            "requests": dict(self.counts),
            "assets": {
                "demo": self.assets.demo,
                "notice": DEMO_NOTICE if self.assets.demo else "real checkpoints",
                "missing": self.assets.missing,
            },
            "models": {
                "spark_tts": str(self.settings.spark_model_dir),
                "rvc_default_voice": self.settings.rvc_model,
            },
            "triton": self.speech.describe(),
            "rvc": self.voice.describe(),
        }
