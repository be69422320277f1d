"""The Voice HTTP API: ``create_app(settings)`` builds the FastAPI app.

The app owns a ``VoiceServices`` for its lifetime (started in the lifespan,
closed on shutdown). Tests and embedders may pass their own services built
from tiny assets; nothing here reads the environment.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from rvc.api.auth import ApiKeyMiddleware, load_api_keys
from rvc.api.errors import install_error_handlers
from rvc.api.idle_wake import IdleWakeMiddleware
from rvc.api.metrics import ApiMetrics
from rvc.api.middleware import BodyLimitMiddleware, HeaderLimitMiddleware, RequestIdMiddleware
from rvc.api.routes_jobs import router as jobs_router
from rvc.api.routes_openai import router as openai_router
from rvc.api.routes_playground import router as playground_router
from rvc.api.routes_synthesis import router as synthesis_router
from rvc.api.routes_system import router as system_router
from rvc.api.routes_voices import router as voices_router
from rvc.api.routes_ws import WS_PROTOCOL
from rvc.api.routes_ws import router as ws_router
from rvc.processing.services import VoiceServices
from rvc.settings import Settings, load_settings

__all__ = ["create_app"]

logger = logging.getLogger(__name__)

DESCRIPTION = """
Text in, speech out in a chosen character voice. Spark-TTS (on Triton) speaks the text in the style of
a reference clip; RVC converts it into the target voice.

Every synthesis route takes a multipart form. Fields left out fall back to the stored defaults
(`GET /config`). Errors come back as `{"error": {"code", "message", "field", "status"}, "request_id"}`;
a 4xx message says what to change. Saved voices (`/voices`) stand in for an uploaded reference
(`voice=<name>`); `/v1/audio/speech` speaks OpenAI's speech API (errors there in OpenAI's shape).
Every synthesis route answers in WAV, FLAC, Ogg/Opus, MP3, AAC or raw PCM (`format` or `Accept`).

### Streaming: `granularity`
`/synthesize/stream` and `/synthesize/sse` take `granularity`: `sentence` (default, one part or event per
sentence) or `chunk` (audio as it leaves RVC, the first sound after the first TTS chunk). Chunk parts carry
`X-Chunk-Index`, `X-Sentence-Index`, `X-Sample-Offset`, `X-Samples`, `X-Sample-Rate`, `X-Elapsed`; chunk
events `{index, sentence, sample_offset, samples, sample_rate, format, audio, elapsed_s, timings}` and an
`end` event `{chunks, samples, duration_s, first_audio_s, total_s, warnings}`. Bodies: a small file per chunk
for wav/wav_float/flac, raw s16le for pcm, one continuous stream for opus/mp3/aac. `speed` needs `sentence`.
"""


def create_app(settings: Settings | None = None, *, services: VoiceServices | None = None) -> FastAPI:
    settings = settings or load_settings()
    owned = services is None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.services = services or VoiceServices.from_settings(settings)
        if owned:
            await app.state.services.start()
        try:
            yield
        finally:
            if owned:
                await app.state.services.close()

    app = FastAPI(
        title="Voice service: Spark-TTS + RVC",
        version="0.1.0",
        description=DESCRIPTION + WS_PROTOCOL,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = ApiMetrics()
    app.state.metrics.capacity.set(settings.rvc_workers)
    if services is not None:
        app.state.services = services
    install_error_handlers(app)
    if settings.idle_unload_s > 0:  # innermost of the middleware: a refused key or oversized head wakes nothing
        app.add_middleware(IdleWakeMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_upload_bytes)
    api_keys = load_api_keys(settings.api_keys)
    if api_keys:  # inside the request id, outside the body limit: no body is read for a refused key
        app.add_middleware(ApiKeyMiddleware, keys=api_keys, metrics=app.state.metrics)
    app.add_middleware(HeaderLimitMiddleware)
    app.add_middleware(RequestIdMiddleware)
    app.include_router(synthesis_router)
    app.include_router(system_router)
    app.include_router(voices_router)
    app.include_router(jobs_router)
    app.include_router(openai_router)
    app.include_router(playground_router)
    app.include_router(ws_router)
    return app
