"""The production backends of the pipeline: Spark-TTS over Triton gRPC, RVC in the worker pool.

Both are created inside the running event loop (the grpc.aio channel binds to
it) and fail soft: a backend that is down makes /health say so and its
requests answer 503, and it recovers by itself when the backend returns
(gRPC reconnects; the pool replaces dead workers).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

import numpy as np

from rvc.device import RVC_DECODER_DTYPES, PartPlacement
from rvc.errors import ModelControlRefused, ModelUnavailable
from rvc.grpc.client import AsyncTritonSparkClient, Speaker, TTSParams, VoiceDesign
from rvc.grpc.model_control import TritonModelControl
from rvc.grpc.model_repository import read_placements
from rvc.grpc.triton_metrics import SpeakerCacheStats, read_speaker_cache
from rvc.logging_setup import request_id_var
from rvc.processing.chunk_pipeline import ClosesOnExit
from rvc.processing.contract import SynthesisDefaults, Target
from rvc.server import ConversionParams, PoolConfig, RVCServer, StreamConfig, StreamHandle
from rvc.settings import Settings

__all__ = ["PoolVoice", "TritonSpeech", "VoiceStream", "conversion_params"]

logger = logging.getLogger(__name__)


def conversion_params(settings: SynthesisDefaults, seed: int | None) -> ConversionParams:
    """The worker's parameters: every field the contract marks ``Target.RVC``, already checked at entry."""
    return ConversionParams(**settings.values_for(Target.RVC), seed=seed)


class TritonSpeech:
    """Spark-TTS through the ``spark_tts`` model on tritonserver."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client: AsyncTritonSparkClient | None = None
        self._control: TritonModelControl | None = None
        self.control_refused: str | None = None  # why Triton keeps its models when idle (explicit mode is off)
        self._count = 0

    async def start(self) -> None:
        self._client = AsyncTritonSparkClient(self.settings.triton_grpc_url, timeout_s=self.settings.triton_timeout_s)
        if self.settings.idle_unload_s > 0:
            self._control = TritonModelControl(
                self.settings.triton_grpc_url, timeout_s=self.settings.triton_startup_timeout_s
            )

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
        if self._control is not None:
            await self._control.close()

    async def unload_models(self) -> None:
        """Unload Triton's models (idle unload); a server that refuses keeps them, and is not asked again."""
        if self._control is None or self.control_refused is not None:
            return
        try:
            names = await self._control.unload_all()
        except ModelControlRefused as exc:
            self.control_refused = exc.message
            logger.warning("idle unload keeps Triton's models loaded: %s", exc.message)
            return
        logger.info("unloaded Triton models %s", ", ".join(names))

    async def load_models(self) -> None:
        """Load every Triton model that is not ready (after idle unload, or one another gateway unloaded)."""
        if self._control is None or self.control_refused is not None:
            return
        names = await self._control.load_all()
        if names:
            logger.info("loaded Triton models %s", ", ".join(names))

    async def speaker_cache(self) -> dict[str, SpeakerCacheStats]:
        """The ``spark_tts`` models' speaker-token caches, from Triton's metrics endpoint (TTSBackendError
        when it cannot be read)."""
        return await read_speaker_cache(self.settings.triton_metrics_url)

    async def ready(self) -> bool:
        return self._client is not None and await self._client.is_server_ready()

    def describe(self) -> dict[str, Any]:
        described: dict[str, Any] = {"address": self.settings.triton_grpc_url, "model": "spark_tts",
                                     "requests": self._count}
        if self.control_refused is not None:
            described["idle_unload"] = f"refused: {self.control_refused}"
        return described

    def placements(self) -> tuple[PartPlacement, ...]:
        """Each Triton model's device and dtype, from the prepared repository (TRITON_MODEL_REPO)."""
        return read_placements(self.settings.triton_model_repo)

    async def speak(
        self, text: str, speaker: Speaker, settings: SynthesisDefaults, *, seed: int | None,
        max_new_tokens: int,
    ) -> np.ndarray:
        if self._client is None:
            raise ModelUnavailable("the Spark-TTS client is not started")
        self._count += 1
        params = TTSParams(**settings.values_for(Target.TTS), max_new_tokens=max_new_tokens, seed=seed)
        wav, _ = await self._client.inference(
            text, speaker, settings.reference_text or None, params,
            request_id=f"{request_id_var.get()}-{self._count}",
        )
        return wav

    async def design(
        self, text: str, design: VoiceDesign, settings: SynthesisDefaults, *, seed: int, max_new_tokens: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Speak ``text`` in a voice invented from ``design`` and return it with its global tokens."""
        if self._client is None:
            raise ModelUnavailable("the Spark-TTS client is not started")
        self._count += 1
        params = TTSParams(**settings.values_for(Target.TTS), max_new_tokens=max_new_tokens, seed=seed)
        return await self._client.speak_in_voice(
            text, Speaker(design=design), None, params, request_id=f"{request_id_var.get()}-{self._count}"
        )

    async def tokenize(self, reference_wav: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A saved voice's 16 kHz clip -> (global (32,), semantic (T,)) int32 speaker tokens."""
        if self._client is None:
            raise ModelUnavailable("the Spark-TTS client is not started")
        return await self._client.tokenize(reference_wav, request_id=f"{request_id_var.get()}-tokenize")

    async def stream_speech(
        self, text: str, speaker: Speaker, settings: SynthesisDefaults, *, seed: int | None,
        max_new_tokens: int,
    ) -> AsyncGenerator[np.ndarray, None]:
        """``text`` from ``spark_tts_decoupled`` as it is generated: (T,) float32 16 kHz pieces that
        concatenate to the sentence; closing the generator cancels the request in Triton."""
        if self._client is None:
            raise ModelUnavailable("the Spark-TTS client is not started")
        self._count += 1
        params = TTSParams(**settings.values_for(Target.TTS), max_new_tokens=max_new_tokens, seed=seed)
        chunks = self._client.stream_audio(
            text, speaker, settings.reference_text or None, params,
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
        if self._pool is not None and self._pool.state == "running":
            return  # a load after idle unload that failed on Triton's side leaves the workers running
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

    async def suspend(self) -> None:
        """Stop the workers (idle unload); ``start`` brings a new pool, voices loaded again on demand."""
        pool, self._pool = self._pool, None
        self._error = "stopped while idle (IDLE_UNLOAD_S); the next request starts it"
        if pool is not None:
            await asyncio.to_thread(pool.shutdown, False, 15.0)

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
            return {**self.pool.status().to_dict(), "precision": self.config.precision, "profile": self.config.profile}
        except ModelUnavailable as exc:
            return {"error": exc.message, "precision": self.config.precision, "profile": self.config.profile}

    def placements(self) -> tuple[PartPlacement, ...]:
        """Each ready worker's device and decoder dtype, as the worker said in its Ready (HuBERT and
        RMVPE run float16 in fp16, float32 otherwise: ``rvc.device.RVC_EXTRACTOR_DTYPES``)."""
        try:
            workers = self.pool.status().workers
        except ModelUnavailable:
            return ()
        return tuple(
            PartPlacement(f"rvc.worker.{worker.worker_id}", worker.device,
                          RVC_DECODER_DTYPES.get(worker.precision or "", worker.precision))
            for worker in workers if worker.device is not None and worker.alive
        )

    async def convert(
        self, audio: np.ndarray, sample_rate: int, settings: SynthesisDefaults, *, voice: str | None,
        seed: int | None,
    ) -> tuple[np.ndarray, int]:
        pool = self.pool
        if pool.status().ready_workers == 0:
            # Queued, the job would wait for a respawn as long as the job timeout allows; the client
            # is better served by a 503 it can retry (the supervisor respawns in seconds).
            raise ModelUnavailable("no RVC worker is alive; the supervisor is starting new ones, retry shortly")
        handle = pool.submit(audio, sample_rate, conversion_params(settings, seed), voice=voice)
        result = await handle.wait()  # cancelling this await cancels the job in the pool
        return result.audio, result.sample_rate

    async def open_stream(
        self, voice: str | None, params: ConversionParams, config: StreamConfig | None = None
    ) -> VoiceStream:
        """A stream job on one worker (``RVCServer.open_stream``; it never waits, so no thread is needed)."""
        return VoiceStream(self.pool.open_stream(voice, params, config))


class VoiceStream(ClosesOnExit):
    """The async face of a pool stream: ``await feed(audio16k)``, ``await flush()``, ``await aclose()``.

    audio16k: (N,) float32 at 16 kHz; each call returns (M,) float32 at
    ``sample_rate`` (M may be 0 while a block fills). Leaving ``async with``
    closes the stream, and so does cancelling an awaited ``feed`` or
    ``flush``: a block whose output nobody takes would leave a hole in the
    audio, so the stream cannot go on after it.
    """

    def __init__(self, handle: StreamHandle) -> None:
        self._handle = handle

    @property
    def sample_rate(self) -> int:
        return self._handle.sample_rate

    @property
    def stream_id(self) -> str:
        return self._handle.stream_id

    async def feed(self, audio16k: np.ndarray) -> np.ndarray:
        return await self._wait(self._handle.feed(audio16k))

    async def flush(self) -> np.ndarray:
        return await self._wait(self._handle.flush())

    async def aclose(self) -> None:
        self._handle.close()

    async def _wait(self, future: concurrent.futures.Future[np.ndarray]) -> np.ndarray:
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            self._handle.close("the awaiting task was cancelled")
            raise
