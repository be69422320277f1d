"""OpenAI-compatible speech: ``POST /v1/audio/speech``, ``GET /v1/models``, ``GET /v1/audio/voices``.

Follows OpenAI's request contract so its clients work unchanged:

* ``model``: any id from ``/v1/models`` (ours, or OpenAI's TTS model names as
  aliases of the same Spark-TTS + RVC pipeline).
* ``voice``: a saved voice (or ``{"id": name}``). OpenAI's own names (alloy,
  echo, ...) that are not saved voices map to the saved voice ``default``, so
  ``POST /voices name=alloy`` is how one is configured. An RVC model name also
  works, as on the seed's routes. Anything else is a 400 listing the voices.
* ``response_format`` mp3 (default), opus, aac, flac, wav, pcm (raw s16le at
  24 kHz, OpenAI's rate, unless ``sample_rate`` says otherwise), plus our
  ``wav_float``; ``speed`` 0.25-4.0 (a pitch-preserving time stretch).
* ``instructions``: accepted and ignored: Spark-TTS in voice-cloning mode
  takes its style from the reference clip and has no prompt for delivery;
  the response says so in ``X-Instructions: ignored``.
* ``stream_format``: ``audio`` (default) streams one file chunk by chunk;
  ``sse`` sends ``speech.audio.delta`` events (base64 chunks of that same
  file) and one ``speech.audio.done``. A request that sends ``stream_format``
  or ``stream: true`` streams at chunk granularity (the first bytes after the
  first TTS chunk leaves RVC) when it can: not with ``speed`` != 1, and
  through RVC only once the pool streams; otherwise, and without either
  field, sentence by sentence (the first bytes once the first sentence is
  converted). The extra field ``granularity`` says which explicitly (and is a
  400 when chunk is impossible). Both wait for the first audio before
  answering, so a failure there is still a plain JSON error.
* Extra body fields (the client's ``extra_body``): ``rvc_model``,
  ``pitch_shift``, ``f0_method``, ``index_rate``, ``filter_radius``,
  ``rms_mix_rate``, ``protect``, ``skip_rvc``, ``temperature``, ``top_k``,
  ``top_p``, ``seed``, ``normalize``, ``sample_rate``, ``reference_audio``
  (base64 audio file replacing the voice's clip) and ``reference_text``;
  ``gender``, ``pitch`` and ``speed_level`` design a voice instead of the
  clip (Spark-TTS's controllable mode: a new voice on every unseeded call;
  ``POST /voices`` with them keeps one).
  Unknown fields are a 400. The text as spoken comes back in
  ``X-Normalized-Text`` (``rvc.api.encoding``).

Errors on these routes use OpenAI's shape ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine
from contextlib import aclosing
from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, create_model

from rvc.api.dependencies import Services
from rvc.api.encoding import demo_headers, normalized_text_headers
from rvc.api.errors import describe_validation
from rvc.api.formats import FORMAT_ALIASES, content_type, output_headers, output_spec
from rvc.api.middleware import openai_error
from rvc.api.streaming import RequestTracker, run_tracked, stream_sentences
from rvc.errors import InvalidInput, VoiceError
from rvc.processing.chunk_output import check_chunk_output
from rvc.processing.chunk_pipeline import ChunkAudio, ChunkJob, sentences_of
from rvc.processing.contract import (
    RVC_MODEL_MAX_CHARS,
    RequestOptions,
    SynthesisDefaults,
    SynthesisOverrides,
    Target,
    fields_for,
    optional_fields,
)
from rvc.processing.formats import FORMATS, OutputSpec, StreamEncoder, time_stretch
from rvc.processing.pipeline import SentenceAudio, SynthesisRequest
from rvc.processing.requests import OPENAI_INPUT_LIMIT, VoiceFields, build_request, voice_design
from rvc.processing.services import VoiceServices
from rvc.processing.voices import DEFAULT_VOICE

__all__ = ["MODELS", "OPENAI_VOICES", "router"]

logger = logging.getLogger(__name__)

MODELS = ("spark-tts-rvc", "tts-1", "tts-1-hd", "gpt-4o-mini-tts", "gpt-4o-mini-tts-2025-12-15")
OPENAI_VOICES = (
    "alloy", "ash", "ballad", "coral", "echo", "fable", "onyx", "nova", "sage", "shimmer", "verse", "marin", "cedar",
)
OPENAI_PCM_RATE = 24000
TOKENS_PER_SECOND = 50  # BiCodec semantic tokens: what "output_tokens" counts
Piece = SentenceAudio | ChunkAudio  # what the stream carries: whole sentences, or chunks (granularity=chunk)


class OpenAIRoute(APIRoute):
    """Answers every error of its routes in OpenAI's shape instead of the service's envelope."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                message, field = describe_validation(exc)
                return openai_response(InvalidInput(message, field=field))
            except VoiceError as exc:
                if exc.status_code >= 500:
                    logger.warning("%s %s failed: %s", request.method, request.url.path, exc)
                return openai_response(exc)

        return handle


def openai_response(error: VoiceError) -> JSONResponse:
    retry_after_s = error.retry_after_s
    headers = None if retry_after_s is None else {"Retry-After": str(max(1, round(retry_after_s)))}
    return JSONResponse(openai_error(error), status_code=error.status_code, headers=headers)


router = APIRouter(prefix="/v1", tags=["openai"], route_class=OpenAIRoute)


class VoiceId(BaseModel):
    id: str


class _SpeechBody(BaseModel):
    """OpenAI's speech request; the contract's tunables are added to it below."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    model: str
    input: str = Field(json_schema_extra={"maxLength": OPENAI_INPUT_LIMIT.max_chars})
    voice: str | VoiceId
    instructions: str | None = Field(None, max_length=4096)
    response_format: str = Field("mp3", description="mp3, opus, aac, flac, wav, pcm (or wav_float)")
    stream_format: Literal["audio", "sse"] = "audio"
    stream: bool | None = Field(None, description="true streams at chunk granularity (as sending stream_format does)")
    rvc_model: str | None = Field(None, max_length=RVC_MODEL_MAX_CHARS)
    reference_audio: str | None = Field(None, description="base64 of an audio file (WAV, FLAC, OGG, MP3)")

    def tunables(self) -> dict[str, Any]:
        """The contract's fields the client set, by name."""
        return {name: value for name, value in self.model_dump().items() if name in _TUNABLES and value is not None}


# every storable tunable plus seed, normalize, sample_rate and speed (OpenAI names the format response_format)
_TUNABLES = {**fields_for(SynthesisDefaults), **fields_for(RequestOptions, Target.REQUEST, Target.TEXT, Target.VOICE)}
_TUNABLES |= {name: info for name, info in fields_for(RequestOptions, Target.OUTPUT).items() if name != "format"}

if TYPE_CHECKING:
    SpeechRequest = _SpeechBody
else:
    SpeechRequest = create_model(
        "SpeechRequest", __base__=_SpeechBody, __module__=__name__, **optional_fields(_TUNABLES)
    )


async def _voice_name(request: _SpeechBody, services: VoiceServices) -> str:
    name = request.voice.id if isinstance(request.voice, VoiceId) else request.voice
    saved = await asyncio.to_thread(services.voices.names)
    if name in saved or name.lower() not in OPENAI_VOICES:
        return name
    if DEFAULT_VOICE in saved:
        return DEFAULT_VOICE
    raise InvalidInput(
        f"voice {name!r} is an OpenAI voice name, mapped to the saved voice {DEFAULT_VOICE!r}, which does not exist; "
        f"save one named {name!r} or {DEFAULT_VOICE!r} (POST /voices); {await asyncio.to_thread(services.describe_voices)}",
        field="voice",
    )


def _output(request: _SpeechBody, tunables: dict[str, Any]) -> OutputSpec:
    name = FORMAT_ALIASES.get(request.response_format.lower(), request.response_format.lower())
    if name not in FORMATS:
        raise InvalidInput(
            f"unknown response_format {request.response_format!r}; use mp3, opus, aac, flac, wav or pcm",
            field="response_format",
        )
    rate = tunables.get("sample_rate") or (OPENAI_PCM_RATE if name == "pcm" else None)
    return output_spec(name, rate, tunables.get("speed"))


def _reference_bytes(request: _SpeechBody) -> bytes | None:
    if request.reference_audio is None:
        return None
    try:
        return base64.b64decode(request.reference_audio, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput("reference_audio must be a base64-encoded audio file", field="reference_audio") from exc


async def _prepare(request: _SpeechBody, services: VoiceServices) -> tuple[SynthesisRequest, OutputSpec]:
    if request.model not in MODELS:
        raise InvalidInput(f"unknown model {request.model!r}; use one of {', '.join(MODELS)}", field="model")
    tunables = request.tunables()
    output = _output(request, tunables)
    stored = {name: value for name, value in tunables.items() if name in SynthesisDefaults.model_fields}
    fields = VoiceFields(
        overrides=SynthesisOverrides.model_construct(**stored), voice=await _voice_name(request, services),
        rvc_model=request.rvc_model, seed=tunables.get("seed"), normalize=tunables.get("normalize"),
        design=voice_design(tunables),
    )
    synthesis = await build_request(
        request.input, fields, services, limit=OPENAI_INPUT_LIMIT, reference=_reference_bytes(request)
    )
    return synthesis, output


def _pieces(
    services: VoiceServices, synthesis: SynthesisRequest, started: float, *, chunked: bool
) -> AsyncGenerator[Piece, None]:
    if chunked:
        return services.chunks.stream(ChunkJob.from_request(synthesis, started), sentences_of(synthesis))
    return services.pipeline.stream(synthesis)


def _chunked(request: _SpeechBody, synthesis: SynthesisRequest, output: OutputSpec, services: VoiceServices) -> bool:
    """Whether to stream at chunk granularity: said explicitly (checked), or implied by streaming when possible."""
    explicit = request.tunables().get("granularity")
    if explicit is not None:
        if explicit == "chunk":
            check_chunk_output(output)
            services.chunks.check(synthesis.settings)
        return bool(explicit == "chunk")
    implied = bool(request.stream) or "stream_format" in request.model_fields_set
    possible = output.speed == 1.0 and (synthesis.settings.skip_rvc or services.chunks.voice is not None)
    return implied and possible


@router.post(
    "/audio/speech",
    summary="OpenAI-compatible text to speech (saved voice, any format, streamed)",
    responses={200: {"content": {"audio/mpeg": {}, "text/event-stream": {}}, "description": "audio or SSE events"}},
)
async def create_speech(request: Request, body: SpeechRequest, services: Services) -> Response:
    tracker = RequestTracker(request, "/v1/audio/speech")

    async def start() -> tuple[SynthesisRequest, OutputSpec, AsyncGenerator[Piece, None], Piece]:
        synthesis, output = await _prepare(body, services)
        chunked = _chunked(body, synthesis, output, services)
        sentences = _pieces(services, synthesis, tracker.started, chunked=chunked)
        try:
            first: Piece = await anext(sentences)
        except BaseException:
            await sentences.aclose()
            raise
        return synthesis, output, sentences, first

    synthesis, output, sentences, first = await run_tracked(tracker, start(), finish=False)
    granularity = "chunk" if isinstance(first, ChunkAudio) else "sentence"
    encoder = StreamEncoder(output, first.sample_rate)

    async def encode(sentence: Piece) -> tuple[bytes, float]:
        """(bytes, seconds of audio they carry) per sentence."""
        data = await asyncio.to_thread(_encode_sentence, encoder, sentence, output.speed)
        return data, sentence.duration_s / output.speed

    async def tail() -> tuple[bytes, float]:
        return await asyncio.to_thread(encoder.finish), 0.0

    chunks = stream_sentences(tracker, sentences, encode, first=first, end=tail)
    headers = output_headers(output, encoder.rate) | {
        "X-Sentences": str(len(synthesis.sentences)), "X-Granularity": granularity,
    }
    headers |= normalized_text_headers(synthesis.normalized_text)
    if body.instructions:
        headers["X-Instructions"] = "ignored"
    headers |= demo_headers(services.assets.demo)
    if body.stream_format == "sse":
        events = _sse_events(chunks, len(body.input))
        return StreamingResponse(events, media_type="text/event-stream", headers=headers)
    return StreamingResponse(_audio_bytes(chunks), media_type=content_type(output, encoder.rate), headers=headers)


def _encode_sentence(encoder: StreamEncoder, sentence: Piece, speed: float) -> bytes:
    return encoder.push(time_stretch(sentence.audio, sentence.sample_rate, speed))


async def _audio_bytes(chunks: AsyncGenerator[tuple[bytes, float], None]) -> AsyncIterator[bytes]:
    async with aclosing(chunks) as stream:
        async for data, _ in stream:
            if data:
                yield data


async def _sse_events(chunks: AsyncGenerator[tuple[bytes, float], None], input_chars: int) -> AsyncIterator[bytes]:
    """OpenAI's stream: ``speech.audio.delta`` per chunk, then ``speech.audio.done`` with usage.

    usage counts input characters as input tokens and 50 BiCodec semantic
    tokens per second of audio as output tokens (Spark-TTS's own units).
    """
    seconds = 0.0
    try:
        async with aclosing(chunks) as stream:
            async for data, duration in stream:
                seconds += duration
                if data:
                    yield _sse({"type": "speech.audio.delta", "audio": base64.b64encode(data).decode("ascii")})
    except VoiceError as error:
        yield _sse({"type": "error", **openai_error(error)})
        return
    output_tokens = round(seconds * TOKENS_PER_SECOND)
    usage = {"input_tokens": input_chars, "output_tokens": output_tokens, "total_tokens": input_chars + output_tokens}
    yield _sse({"type": "speech.audio.done", "usage": usage})


def _sse(payload: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(payload)}\n\n".encode()


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "voice-service"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


@router.get("/models", response_model=ModelList, summary="The model ids /v1/audio/speech accepts")
async def list_models() -> ModelList:
    return ModelList(data=[ModelCard(id=model) for model in MODELS])


@router.get("/audio/voices", summary="Voices /v1/audio/speech accepts: saved voices and OpenAI's mapped names")
async def list_openai_voices(services: Services) -> dict[str, Any]:
    records = await asyncio.to_thread(services.voices.records)
    saved = {record.name for record in records}
    mapped = [name for name in OPENAI_VOICES if name not in saved and DEFAULT_VOICE in saved]
    data = [
        {"id": record.name, "object": "voice", "name": record.name, "description": record.description,
         "rvc_model": record.rvc_model, "skip_rvc": bool(record.defaults.given().get("skip_rvc"))}
        for record in records
    ]
    data += [{"id": name, "object": "voice", "name": name, "alias_of": DEFAULT_VOICE} for name in mapped]
    return {"object": "list", "data": data, "voices": [entry["id"] for entry in data]}

