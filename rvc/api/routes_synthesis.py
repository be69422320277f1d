"""The seed's synthesis routes: /synthesize, /synthesize/stream, /synthesize/sse, /tts, /rvc.

Each route validates (400s name the field), decodes audio off the event loop,
runs the pipeline and shapes the response; the work itself lives in
``rvc.processing``. Streaming routes stop the request's remaining TTS and RVC
work when the client goes away: the pipeline's iterator is closed, which
cancels its tasks.

Every route answers in the requested format (``format`` field or ``Accept``,
default WAV PCM16), at ``sample_rate`` and ``speed``; the streaming routes
send each sentence as a complete file of that format, as the seed did with WAV.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, File, Request, UploadFile
from fastapi.responses import Response, StreamingResponse
from sse_starlette import EventSourceResponse

from rvc.api.encoding import (
    multipart_closing,
    multipart_error_part,
    multipart_part,
    result_headers,
    sentence_event,
)
from rvc.api.formats import content_type, encode_body, output_headers
from rvc.api.forms import ConversionForm, SynthesisForm, conversion_form, synthesis_form
from rvc.audio import decode_audio, resample
from rvc.errors import InvalidInput, VoiceError
from rvc.logging_setup import request_id_var
from rvc.processing.params import SynthesisDefaults
from rvc.processing.pipeline import SynthesisRequest
from rvc.processing.sentences import split_sentences
from rvc.processing.services import VoiceSelection, VoiceServices

__all__ = ["router"]

router = APIRouter(tags=["synthesis"])

MIN_REFERENCE_SECONDS = 0.5
SILENT_REFERENCE_RMS = 1e-4
TTS_RATE = 16000

WAV_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {media: {} for media in ("audio/wav", "audio/flac", "audio/ogg", "audio/mpeg", "audio/aac",
                                             "audio/pcm")},
        "description": "audio in the requested format (default WAV PCM16)",
    }
}


def services_of(request: Request) -> VoiceServices:
    return request.app.state.services


Services = Annotated[VoiceServices, Depends(services_of)]


async def read_upload(upload: UploadFile, *, field: str, max_seconds: float, rate: int | None) -> np.ndarray:
    data = await upload.read()
    wav, _ = await asyncio.to_thread(
        decode_audio, data, max_seconds=max_seconds, target_sample_rate=rate, field=field
    )
    return wav


async def build_request(
    form: SynthesisForm, services: VoiceServices, *, skip_rvc: bool = False, uploaded: np.ndarray | None = None
) -> SynthesisRequest:
    """Validate the text and reference; merge request fields over the saved voice's over the stored defaults.

    The reference is the upload (``form.reference_audio``, or ``uploaded``:
    (T,) float32 at 16 kHz already decoded), else the saved voice's clip, else
    the stored default clip. An upload replaces the voice's clip, so the
    voice's transcript is dropped with it.
    """
    settings = services.settings
    text = form.text.strip()
    if not text:
        raise InvalidInput("text is empty: give the words to speak", field="text")
    if len(text) > settings.max_text_chars:
        raise InvalidInput(
            f"text is {len(text)} characters; the limit is {settings.max_text_chars} (MAX_TEXT_CHARS): split it "
            "into several requests or use /synthesize/stream",
            field="text",
        )
    sentences = tuple(split_sentences(text))
    if not sentences:
        raise InvalidInput("text has nothing speakable: it needs letters or digits", field="text")
    selection = await services.select_voice(form.voice, form.rvc_model)
    voice_overrides = selection.overrides
    if form.reference_audio is not None:
        uploaded = await read_upload(
            form.reference_audio, field="reference_audio", max_seconds=settings.max_reference_seconds, rate=TTS_RATE
        )
    if uploaded is not None:
        reference = uploaded
        voice_overrides = voice_overrides.model_copy(update={"reference_text": None})
    elif selection.reference_wav is not None:
        reference = selection.reference_wav
    else:
        stored = services.store.reference()
        if stored is None:
            raise InvalidInput(
                "reference_audio is required: upload a clip, name a saved voice (voice=, GET /voices), or store a "
                "default with POST /config/reference-audio",
                field="reference_audio",
            )
        reference = await asyncio.to_thread(resample, stored.wav, stored.sample_rate, TTS_RATE)
    check_reference(reference)
    resolved = resolve_settings(form, services, selection)
    if skip_rvc:
        resolved = resolved.model_copy(update={"skip_rvc": True})
    return SynthesisRequest(sentences, reference, resolved, rvc_model=selection.rvc_model, seed=form.seed)


def resolve_settings(form: ConversionForm, services: VoiceServices, selection: VoiceSelection) -> SynthesisDefaults:
    """Request fields over the saved voice's over the stored defaults; naming an RVC model turns RVC on."""
    resolved = form.overrides.apply(selection.overrides.apply(services.store.get()))
    if form.rvc_model and form.overrides.skip_rvc is None:
        resolved = resolved.model_copy(update={"skip_rvc": False})
    return resolved


def check_reference(reference: np.ndarray) -> None:
    seconds = reference.size / TTS_RATE
    if seconds < MIN_REFERENCE_SECONDS:
        raise InvalidInput(
            f"reference_audio is {seconds:.2f} s long; give at least {MIN_REFERENCE_SECONDS:g} s of speech",
            field="reference_audio",
        )
    if float(np.sqrt(np.mean(np.square(reference, dtype=np.float64)))) < SILENT_REFERENCE_RMS:
        raise InvalidInput("reference_audio is silent: record some speech", field="reference_audio")


class RequestTracker:
    """Counts and times one request in the services' counters and the metrics."""

    def __init__(self, request: Request, route: str) -> None:
        self.services: VoiceServices = request.app.state.services
        self.metrics = request.app.state.metrics
        self.route = route
        self.started = time.perf_counter()
        self.services.counts["requests"] += 1
        self.metrics.in_flight.inc()
        self._open = True

    def finish(self, status: int, *, cancelled: bool = False) -> None:
        if not self._open:
            return
        self._open = False
        self.metrics.in_flight.dec()
        self.metrics.requests.labels(self.route, str(status)).inc()
        self.metrics.duration.labels(self.route).observe(time.perf_counter() - self.started)
        key = "cancelled" if cancelled else ("succeeded" if status < 400 else "failed")
        self.services.counts[key] += 1
        if cancelled:
            self.metrics.cancelled.inc()

    def observe_sentence(self, tts_time: float, rvc_time: float, audio_seconds: float, warned: bool) -> None:
        self.metrics.sentences.inc()
        self.metrics.stage_seconds.labels("tts").observe(tts_time)
        self.metrics.stage_seconds.labels("rvc").observe(rvc_time)
        self.metrics.audio_seconds.inc(audio_seconds)
        if warned:
            self.metrics.sentence_warnings.inc()


async def run_tracked(tracker: RequestTracker, work: Any, *, finish: bool = True) -> Any:
    """Await ``work``, recording a failure's status; ``finish=False`` leaves a success open (a stream follows)."""
    try:
        result = await work
    except VoiceError as error:
        tracker.finish(error.status_code)
        raise
    except asyncio.CancelledError:
        tracker.finish(499, cancelled=True)
        raise
    except Exception:
        tracker.finish(500)
        raise
    if finish:
        tracker.finish(200)
    return result


async def _synthesize_response(request: Request, form: SynthesisForm, route: str, *, skip_rvc: bool) -> Response:
    tracker = RequestTracker(request, route)
    services = tracker.services

    async def work() -> Response:
        synthesis = await build_request(form, services, skip_rvc=skip_rvc)
        result = await services.pipeline.synthesize(synthesis)
        for sentence in result.sentences:
            tracker.observe_sentence(sentence.tts_time, sentence.rvc_time, sentence.duration_s, bool(sentence.warnings))
        body, rate, seconds = await encode_body(form.output, result.audio, result.sample_rate)
        headers = result_headers(result, demo=services.assets.demo) | output_headers(form.output, rate, seconds)
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
        wav, rate = await asyncio.to_thread(
            decode_audio, await audio.read(), max_seconds=services.settings.max_audio_seconds, field="audio"
        )
        selection = await services.select_voice(form.voice, form.rvc_model)
        settings = resolve_settings(form, services, selection)
        if settings.skip_rvc:
            raise InvalidInput(
                f"voice {form.voice!r} has no RVC model; name one with rvc_model to convert", field="voice"
            )
        started = time.perf_counter()
        converted, out_rate = await services.voice.convert(
            wav, rate, settings, voice=selection.rvc_model, seed=form.seed
        )
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
    try:
        synthesis = await build_request(form, tracker.services)
    except VoiceError as error:
        tracker.finish(error.status_code)
        raise
    return tracker, synthesis


@router.post(
    "/synthesize/stream",
    summary="Streaming synthesis: multipart/mixed, one WAV part per sentence as soon as it is ready",
    responses={200: {"content": {"multipart/mixed": {}}, "description": "one audio/wav part per sentence"}},
)
async def synthesize_stream(
    request: Request, form: Annotated[SynthesisForm, Depends(synthesis_form)]
) -> StreamingResponse:
    tracker, synthesis = await _prepared_stream(request, form, "/synthesize/stream")
    boundary = f"voice-{uuid.uuid4().hex}"

    async def parts() -> AsyncIterator[bytes]:
        sentences = tracker.services.pipeline.stream(synthesis)
        status = 200
        try:
            async for sentence in sentences:
                tracker.observe_sentence(sentence.tts_time, sentence.rvc_time, sentence.duration_s, bool(sentence.warnings))
                body, rate, seconds = await encode_body(form.output, sentence.audio, sentence.sample_rate)
                yield multipart_part(
                    boundary, sentence, body, media_type=content_type(form.output, rate), sample_rate=rate,
                    duration_s=seconds,
                )
        except VoiceError as error:
            status = error.status_code
            yield multipart_error_part(boundary, error.to_dict())
        except asyncio.CancelledError:
            tracker.finish(499, cancelled=True)
            raise
        finally:
            await sentences.aclose()
            tracker.finish(status)
        yield multipart_closing(boundary)

    headers = {"X-Sentences": str(len(synthesis.sentences))}
    if tracker.services.assets.demo:
        headers["X-Demo-Assets"] = "random weights: output is noise until real assets are installed"
    return StreamingResponse(parts(), media_type=f"multipart/mixed; boundary={boundary}", headers=headers)


@router.post(
    "/synthesize/sse",
    summary="Streaming synthesis as Server-Sent Events: start, chunk (base64 WAV per sentence), end, error",
    responses={200: {"content": {"text/event-stream": {}}, "description": "SSE events"}},
)
async def synthesize_sse(
    request: Request, form: Annotated[SynthesisForm, Depends(synthesis_form)]
) -> EventSourceResponse:
    tracker, synthesis = await _prepared_stream(request, form, "/synthesize/sse")

    async def events() -> AsyncIterator[dict[str, str]]:
        sentences = tracker.services.pipeline.stream(synthesis)
        status = 200
        audio_seconds = 0.0
        yield {"event": "start", "data": json.dumps({
            "request_id": request_id_var.get(), "sentences": list(synthesis.sentences),
            "demo_assets": tracker.services.assets.demo,
        })}
        try:
            async for sentence in sentences:
                audio_seconds += round(sentence.audio.size / form.output.speed) / sentence.sample_rate
                tracker.observe_sentence(sentence.tts_time, sentence.rvc_time, sentence.duration_s, bool(sentence.warnings))
                body, rate, seconds = await encode_body(form.output, sentence.audio, sentence.sample_rate)
                event = sentence_event(sentence, body, audio_format=form.output.format, sample_rate=rate,
                                       duration_s=seconds)
                yield {"event": "chunk", "data": json.dumps(event)}
            yield {"event": "end", "data": json.dumps({
                "sentences": len(synthesis.sentences), "audio_duration": round(audio_seconds, 3),
                "total_time": round(time.perf_counter() - tracker.started, 3),
            })}
        except VoiceError as error:
            status = error.status_code
            yield {"event": "error", "data": json.dumps({"error": error.to_dict()})}
        except asyncio.CancelledError:
            tracker.finish(499, cancelled=True)
            raise
        finally:
            await sentences.aclose()
            tracker.finish(status)

    return EventSourceResponse(events(), ping=15)
