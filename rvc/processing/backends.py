"""The production backends of the pipeline: Spark-TTS over Triton gRPC, RVC in the worker pool.

Both are created inside the running event loop (the grpc.aio channel binds to
it) and fail soft: a backend that is down makes /health say so and its
requests answer 503, and it recovers by itself when the backend returns
(gRPC reconnects; the pool replaces dead workers).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

import numpy as np

from rvc.errors import ModelUnavailable
from rvc.grpc.client import AsyncTritonSparkClient, TTSParams
from rvc.logging_setup import request_id_var
from rvc.processing.contract import SynthesisDefaults, Target
from rvc.server import ConversionParams, PoolConfig, RVCServer
from rvc.settings import Settings

__all__ = ["PoolVoice", "TritonSpeech", "conversion_params"]

logger = logging.getLogger(__name__)


def conversion_params(settings: SynthesisDefaults, seed: int | None) -> ConversionParams:
    """The worker's parameters: every field the contract marks ``Target.RVC``, already checked at entry."""
    return ConversionParams(**settings.values_for(Target.RVC), seed=seed)


class TritonSpeech:
    """Spark-TTS through the ``spark_tts`` model on tritonserver."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client: AsyncTritonSparkClient | None = None
        self._count = 0

    async def start(self) -> None:
        self._client = AsyncTritonSparkClient(self.settings.triton_grpc_url, timeout_s=self.settings.triton_timeout_s)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()

    async def ready(self) -> bool:
        return self._client is not None and await self._client.is_server_ready()

    def describe(self) -> dict[str, Any]:
        return {"address": self.settings.triton_grpc_url, "model": "spark_tts", "requests": self._count}

    async def speak(
        self, text: str, reference_wav: np.ndarray, settings: SynthesisDefaults, *, seed: int | None,
        max_new_tokens: int,
    ) -> np.ndarray:
        if self._client is None:
            raise ModelUnavailable("the Spark-TTS client is not started")
        self._count += 1
        params = TTSParams(**settings.values_for(Target.TTS), max_new_tokens=max_new_tokens, seed=seed)
        wav, _ = await self._client.inference(
            text, reference_wav, settings.reference_text or None, params,
            request_id=f"{request_id_var.get()}-{self._count}",
        )
        return wav

    async def stream_speech(
        self, text: str, reference_wav: np.ndarray, settings: SynthesisDefaults, *, seed: int | None,
        max_new_tokens: int,
    ) -> AsyncGenerator[np.ndarray, None]:
        """``text`` from ``spark_tts_decoupled`` as it is generated: (T,) float32 16 kHz pieces that
        concatenate to the sentence; closing the generator cancels the request in Triton."""
        if self._client is None:
            raise ModelUnavailable("the Spark-TTS client is not started")
        self._count += 1
        params = TTSParams(**settings.values_for(Target.TTS), max_new_tokens=max_new_tokens, seed=seed)
        chunks = self._client.stream_audio(
            text, reference_wav, settings.reference_text or None, params,
            request_id=f"{request_id_var.get()}-{self._count}",
        )
        async with aclosing(chunks) as stream:
            async for chunk in stream:
                yield chunk.audio


class PoolVoice:
    """RVC through ``RVCServer``: jobs go to worker processes, results come back as futures."""

    def __init__(self, settings: Settings, config: PoolConfig | None = None) -> None:
        self.config = config or PoolConfig.from_settings(settings)
        self._pool: RVCServer | None = None
        self._error: str | None = None
        self._load_lock = asyncio.Lock()  # one load per voice, however many requests ask at once

    @property
    def pool(self) -> RVCServer:
        if self._pool is None or self._pool.state != "running":
            raise ModelUnavailable(f"the RVC worker pool is not running ({self._error or 'not started'})")
        return self._pool

    async def start(self) -> None:
        pool = RVCServer(self.config)
        try:
            await asyncio.to_thread(pool.start)
        except Exception as exc:
            self._error = str(exc)
            raise
        self._pool = pool

    async def close(self) -> None:
        if self._pool is not None:
            await asyncio.to_thread(self._pool.shutdown, False, 15.0)

    async def ensure_voice(self, name: str) -> None:
        """Load the .pth ``name`` on every worker the first time it is asked for."""
        pool = self.pool
        if name in pool.voices:
            return
        async with self._load_lock:
            if name not in pool.voices:
                logger.info("loading RVC model %s on the workers", name)
                await asyncio.to_thread(pool.load_voice, name)

    def ready(self) -> bool:
        try:
            return self.pool.status().ready_workers > 0
        except ModelUnavailable:
            return False

    def describe(self) -> dict[str, Any]:
        try:
            return {**self.pool.status().to_dict(), "precision": self.config.precision}
        except ModelUnavailable as exc:
            return {"error": exc.message, "precision": self.config.precision}

    async def convert(
        self, audio: np.ndarray, sample_rate: int, settings: SynthesisDefaults, *, voice: str | None,
        seed: int | None,
    ) -> tuple[np.ndarray, int]:
        handle = self.pool.submit(audio, sample_rate, conversion_params(settings, seed), voice=voice)
        result = await handle.wait()  # cancelling this await cancels the job in the pool
        return result.audio, result.sample_rate
