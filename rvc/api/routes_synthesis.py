"""The seed's synthesis routes: /synthesize, /synthesize/stream, /synthesize/sse, /tts, /rvc.

Each route validates (400s name the field), decodes audio off the event loop,
runs the pipeline and shapes the response; the work itself lives in
``rvc.processing``. Streaming routes stop the request's remaining TTS and RVC
work when the client goes away: the pipeline's iterator is closed, which
cancels its tasks.

The text routes return the text as spoken after normalisation (``normalize``,
on by default): ``X-Normalized-Text`` on /synthesize, /tts and
/synthesize/stream (``rvc.api.encoding`` says how it is encoded), and
``normalized_text`` in the SSE ``start`` event (null when ``normalize=false``).

Every route answers in the requested format (``format`` field or ``Accept``,
default WAV PCM16), at ``sample_rate`` and ``speed``; the streaming routes
send each sentence as a complete file of that format, as the seed did with WAV.
With ``granularity=chunk`` they send audio as it leaves RVC instead, one part
or event per chunk (docs: the streaming protocol in the app description).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, File, Request, UploadFile
from fastapi.responses import Response, StreamingResponse
from sse_starlette import EventSourceResponse

from rvc.api.dependencies import form_body
from rvc.api.encoding import (
    chunk_event,
    demo_headers,
    multipart_chunk_part,
    multipart_closing,
    multipart_error_part,
    multipart_part,
    normalized_text_headers,
    result_headers,
    sentence_event,
    sse_error_event,
)
from rvc.api.formats import content_type, encode_body, output_headers
from rvc.api.forms import ConversionForm, SynthesisForm, conversion_form, synthesis_form
from rvc.api.streaming import RequestTracker, run_tracked, stream_sentences
from rvc.errors import VoiceError
from rvc.logging_setup import request_id_var
from rvc.processing.chunk_output import RenderedChunk, check_chunk_output, chunk_audio
from rvc.processing.chunk_pipeline import ChunkJob, sentences_of
from rvc.processing.pipeline import SentenceAudio, SynthesisRequest
from rvc.processing.requests import build_conversion, build_request, decode_clip, service_text_limit

__all__ = ["router"]

router = APIRouter(tags=["synthesis"], dependencies=[Depends(form_body)])

Item = TypeVar("Item")

WAV_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {media: {} for media in ("audio/wav", "audio/flac", "audio/ogg", "audio/mpeg", "audio/aac",
                                             "audio/pcm")},
        "description": "audio in the requested format (default WAV PCM16)",
    }
}


async def _prepare(tracker: RequestTracker, form: SynthesisForm, *, skip_rvc: bool = False) -> SynthesisRequest:
    services = tracker.services
    reference = await form.reference_audio.read() if form.reference_audio is not None else None
    return await build_request(
        form.text, form.fields, services, limit=service_text_limit(services), reference=reference, skip_rvc=skip_rvc
    )


async def _synthesize_response(request: Request, form: SynthesisForm, route: str, *, skip_rvc: bool) -> Response:
    tracker = RequestTracker(request, route)
    services = tracker.services

    async def work() -> Response:
        synthesis = await _prepare(tracker, form, skip_rvc=skip_rvc)
        result = await services.pipeline.synthesize(synthesis)
        for sentence in result.sentences:
            tracker.observe(sentence)
        body, rate, seconds = await encode_body(form.output, result.audio, result.sample_rate)
        headers = (
            result_headers(result, demo=services.assets.demo) | output_headers(form.output, rate, seconds)
            | normalized_text_headers(synthesis.normalized_text)
        )
        return Response(body, media_type=content_type(form.output, rate), headers=headers)

    return await run_tracked(tracker, work())


@router.post("/synthesize", responses=WAV_RESPONSE, summary="Text to speech in the target voice (TTS + RVC)")
async def synthesize(request: Request, form: Annotated[SynthesisForm, Depends(synthesis_form)]) -> Response:
    return await _synthesize_response(request, form, "/synthesize", skip_rvc=False)


@router.post("/tts", responses=WAV_RESPONSE, summary="Spark-TTS only: 16 kHz speech in the reference's style")
async def tts(request: Request, form: Annotated[SynthesisForm, Depends(synthesis_form)]) -> Response:
    return await _synthesize_response(request, form, "/tts", skip_rvc=True)


@router.post("/rvc", responses=WAV_RESPONSE, summary="RVC only: convert uploaded speech into the target voice")
async def rvc(
    request: Request,
    audio: Annotated[UploadFile, File(description="speech to convert (WAV, FLAC, OGG or MP3)")],
    form: Annotated[ConversionForm, Depends(conversion_form)],
) -> Response:
    tracker = RequestTracker(request, "/rvc")
    services = tracker.services

    async def work() -> Response:
        wav, rate = await decode_clip(
            await audio.read(), field="audio", max_seconds=services.settings.max_audio_seconds
        )
        job = await build_conversion(form.fields, services)
        started = time.perf_counter()
        converted, out_rate = await services.voice.convert(wav, rate, job.settings, voice=job.rvc_model, seed=job.seed)
        elapsed = time.perf_counter() - started
        tracker.observe_sentence(0.0, elapsed, converted.size / out_rate, False)
        body, body_rate, seconds = await encode_body(form.output, converted, out_rate)
        headers = {
            "X-RVC-Time": f"{elapsed:.3f}", "X-Total-Time": f"{time.perf_counter() - tracker.started:.3f}",
            **output_headers(form.output, body_rate, seconds),
        }
        return Response(body, media_type=content_type(form.output, body_rate), headers=headers)

    return await run_tracked(tracker, work())


async def _prepared_stream(request: Request, form: SynthesisForm, route: str) -> tuple[RequestTracker, SynthesisRequest]:
    """Validation happens before the response starts, so bad input is still a plain 4xx."""
    tracker = RequestTracker(request, route)

    async def prepare() -> SynthesisRequest:
        synthesis = await _prepare(tracker, form)
        if form.granularity == "chunk":
            check_chunk_output(form.output)
            tracker.services.chunks.check(synthesis.settings)
        return synthesis

    return tracker, await run_tracked(tracker, prepare(), finish=False)


def _chunks(tracker: RequestTracker, form: SynthesisForm, synthesis: SynthesisRequest) -> AsyncGenerator[RenderedChunk, None]:
    job = ChunkJob.from_request(synthesis, tracker.started)
    return chunk_audio(tracker.services.chunks, job, sentences_of(synthesis), form.output)


def _multipart_response(
    tracker: RequestTracker,
    items: AsyncGenerator[Item, None],
    render: Callable[[str, Item], Awaitable[bytes]],
    headers: dict[str, str],
) -> StreamingResponse:
    """multipart/mixed, one ``render(boundary, item)`` part per sentence or chunk.

    A failure mid-stream cannot change the status any more, so it becomes a
    JSON error part, and the closing boundary still follows it.
    """
    boundary = f"voice-{uuid.uuid4().hex}"

    async def part(item: Item) -> bytes:
        return await render(boundary, item)

    async def closing() -> bytes:
        return multipart_closing(boundary)

    def error_part(error: VoiceError) -> bytes:
        return multipart_error_part(boundary, error.to_dict()) + multipart_closing(boundary)

    parts = stream_sentences(tracker, items, part, end=closing, on_error=error_part)
    headers = headers | demo_headers(tracker.services.assets.demo)
    return StreamingResponse(parts, media_type=f"multipart/mixed; boundary={boundary}", headers=headers)


def _chunked_multipart(tracker: RequestTracker, form: SynthesisForm, synthesis: SynthesisRequest) -> StreamingResponse:
    async def part(boundary: str, chunk: RenderedChunk) -> bytes:
        return multipart_chunk_part(boundary, chunk, content_type(form.output, chunk.sample_rate))

    headers = {"X-Sentences": str(len(synthesis.sentences)), "X-Granularity": "chunk"}
    return _multipart_response(tracker, _chunks(tracker, form, synthesis), part, headers)


def _chunked_events(
    tracker: RequestTracker, form: SynthesisForm, synthesis: SynthesisRequest
) -> AsyncGenerator[dict[str, str], None]:
    """SSE in chunk mode: ``chunk`` events with offsets and timings, then ``end`` with the totals."""
    totals = {"chunks": 0, "samples": 0, "rate": 0}
    first_audio: float | None = None

    async def chunk(item: RenderedChunk) -> dict[str, str]:
        nonlocal first_audio
        if first_audio is None and item.samples:
            first_audio = time.perf_counter() - tracker.started
        totals["chunks"] += 1
        totals["samples"] += item.samples
        totals["rate"] = item.sample_rate
        return {"event": "chunk", "data": json.dumps(chunk_event(item, form.output.format))}

    async def end() -> dict[str, str]:
        rate = totals["rate"] or 1
        return {"event": "end", "data": json.dumps({
            "chunks": totals["chunks"], "samples": totals["samples"], "duration_s": round(totals["samples"] / rate, 4),
            "first_audio_s": None if first_audio is None else round(first_audio, 4),
            "total_s": round(time.perf_counter() - tracker.started, 4), "warnings": [],
        })}

    return stream_sentences(tracker, _chunks(tracker, form, synthesis), chunk, end=end, on_error=sse_error_event)


@router.post(
    "/synthesize/stream",
    summary="Streaming synthesis: multipart/mixed, one WAV part per sentence as soon as it is ready",
    responses={200: {"content": {"multipart/mixed": {}}, "description": "one audio/wav part per sentence"}},
)
async def synthesize_stream(
    request: Request, form: Annotated[SynthesisForm, Depends(synthesis_form)]
) -> StreamingResponse:
    tracker, synthesis = await _prepared_stream(request, form, "/synthesize/stream")
    if form.granularity == "chunk":
        return _chunked_multipart(tracker, form, synthesis)

    async def part(boundary: str, sentence: SentenceAudio) -> bytes:
        body, rate, seconds = await encode_body(form.output, sentence.audio, sentence.sample_rate)
        return multipart_part(
            boundary, sentence, body, media_type=content_type(form.output, rate), sample_rate=rate, duration_s=seconds
        )

    headers = {"X-Sentences": str(len(synthesis.sentences))} | normalized_text_headers(synthesis.normalized_text)
    return _multipart_response(tracker, tracker.services.pipeline.stream(synthesis), part, headers)


@router.post(
    "/synthesize/sse",
    summary="Streaming synthesis as Server-Sent Events: start, chunk (base64 WAV per sentence), end, error",
    responses={200: {"content": {"text/event-stream": {}}, "description": "SSE events"}},
)
async def synthesize_sse(
    request: Request, form: Annotated[SynthesisForm, Depends(synthesis_form)]
) -> EventSourceResponse:
    tracker, synthesis = await _prepared_stream(request, form, "/synthesize/sse")
    audio_seconds = 0.0
    chunked = form.granularity == "chunk"

    async def chunk(sentence: SentenceAudio) -> dict[str, str]:
        nonlocal audio_seconds
        audio_seconds += round(sentence.audio.size / form.output.speed) / sentence.sample_rate
        body, rate, seconds = await encode_body(form.output, sentence.audio, sentence.sample_rate)
        event = sentence_event(sentence, body, audio_format=form.output.format, sample_rate=rate, duration_s=seconds)
        return {"event": "chunk", "data": json.dumps(event)}

    async def end() -> dict[str, str]:
        return {"event": "end", "data": json.dumps({
            "sentences": len(synthesis.sentences), "audio_duration": round(audio_seconds, 3),
            "total_time": round(time.perf_counter() - tracker.started, 3),
        })}

    async def events() -> AsyncIterator[dict[str, str]]:
        yield {"event": "start", "data": json.dumps({
            "request_id": request_id_var.get(), "sentences": list(synthesis.sentences),
            "normalized_text": synthesis.normalized_text, "demo_assets": tracker.services.assets.demo,
            "granularity": form.granularity,
        })}
        stream = _chunked_events(tracker, form, synthesis) if chunked else stream_sentences(
            tracker, tracker.services.pipeline.stream(synthesis), chunk, end=end, on_error=sse_error_event
        )
        async with aclosing(stream) as chunks:
            async for item in chunks:
                yield item

    return EventSourceResponse(events(), ping=15)
