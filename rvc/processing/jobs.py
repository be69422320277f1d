"""Long-form jobs: what a job stores, how its status reads, and its audio put back together.

A job is resolved when it is submitted (text normalised and split, voice and
parameters merged, output format checked), so a 400 comes back at once and
the job runs later exactly as it was asked for, on whichever gateway claims
it, even if the saved voice or the stored defaults change meanwhile. The
runner (``rvc.processing.job_runner``) speaks it sentence by sentence.

Finished sentences are stored as 16-bit FLAC: lossless for every delivered
format but ``wav_float``, about half the size of PCM16 (a job's audio lives
in the database until its retention runs out).
"""

from __future__ import annotations

import asyncio
import io
import uuid
from dataclasses import dataclass

import numpy as np
import soundfile as sf
from pydantic import BaseModel, ConfigDict, Field

from rvc.errors import Conflict, InvalidInput
from rvc.grpc.wire import Speaker, VoiceDesign
from rvc.processing.audio_join import crossfade_concat
from rvc.processing.contract import SynthesisDefaults
from rvc.processing.formats import AudioFormat, OutputSpec
from rvc.processing.pipeline import SynthesisRequest
from rvc.storage.clips import clip_bytes
from rvc.storage.jobs import JobRecord, JobState, JobStore, NewJob

__all__ = [
    "JOB_STATES",
    "JobAudio",
    "JobList",
    "JobRequest",
    "JobStatus",
    "decode_sentence",
    "encode_sentence",
    "job_audio",
    "job_status",
    "new_job",
    "parse_state",
]

JOB_STATES = tuple(state.value for state in JobState)


class JobRequest(BaseModel):
    """A resolved synthesis request and its output, as stored with the job (JSON)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sentences: tuple[str, ...]
    settings: SynthesisDefaults
    rvc_model: str | None = None
    seed: int | None = None
    normalized_text: str | None = None
    format: AudioFormat = "wav"
    sample_rate: int | None = None
    speed: float = 1.0
    # who speaks when it is not a clip (the clip is the job's ``reference`` bytes, empty otherwise)
    global_tokens: tuple[int, ...] | None = None
    semantic_tokens: tuple[int, ...] | None = None
    design: tuple[str, str, str] | None = None  # gender, pitch, speed_level

    @classmethod
    def of(cls, request: SynthesisRequest, output: OutputSpec) -> JobRequest:
        speaker = request.speaker
        design = speaker.design
        return cls(
            sentences=request.sentences, settings=request.settings, rvc_model=request.rvc_model, seed=request.seed,
            normalized_text=request.normalized_text, format=output.format, sample_rate=output.sample_rate,
            speed=output.speed, global_tokens=speaker.global_tokens, semantic_tokens=speaker.semantic_tokens,
            design=None if design is None else (design.gender, design.pitch, design.speed_level),
        )

    @property
    def output(self) -> OutputSpec:
        return OutputSpec(format=self.format, sample_rate=self.sample_rate, speed=self.speed)

    def synthesis(self, reference_wav: np.ndarray) -> SynthesisRequest:
        """reference_wav: the job's clip, (T,) float32 at 16 kHz (empty when tokens or a design speak)."""
        if self.global_tokens is not None:
            speaker = Speaker(global_tokens=self.global_tokens, semantic_tokens=self.semantic_tokens)
        elif self.design is not None:
            speaker = Speaker(design=VoiceDesign(*self.design))
        else:
            speaker = Speaker(reference_wav=reference_wav)
        return SynthesisRequest(
            self.sentences, speaker, self.settings, rvc_model=self.rvc_model, seed=self.seed,
            normalized_text=self.normalized_text,
        )


def new_job(request: SynthesisRequest, output: OutputSpec) -> NewJob:
    clip = request.speaker.reference_wav
    return NewJob(
        id=uuid.uuid4().hex, request=JobRequest.of(request, output).model_dump_json(),
        reference=b"" if clip is None else clip_bytes(clip), sentences_total=len(request.sentences),
        chars_total=sum(len(sentence) for sentence in request.sentences),
    )


class JobStatus(BaseModel):
    """``GET /jobs/{id}``: where a job stands."""

    id: str
    state: JobState = Field(description=f"one of {', '.join(JOB_STATES)}")
    sentences_done: int
    sentences_total: int
    progress: float = Field(description="share of the text's characters spoken, 0..1")
    audio_seconds: float = Field(description="seconds of audio finished so far (before speed)")
    eta_s: float | None = Field(description="seconds until done at the pace so far; null until a sentence is done")
    warnings: list[str]
    error: str | None
    format: str
    attempts: int
    created_at: float
    started_at: float | None
    finished_at: float | None
    audio_url: str


class JobList(BaseModel):
    jobs: list[JobStatus]


def job_status(record: JobRecord) -> JobStatus:
    request = JobRequest.model_validate_json(record.request)
    eta: float | None = None
    if record.state is JobState.DONE:
        eta = 0.0
    elif not record.state.finished and record.chars_done > 0:
        eta = round(record.work_s / record.chars_done * (record.chars_total - record.chars_done), 1)
    return JobStatus(
        id=record.id, state=record.state, sentences_done=record.sentences_done,
        sentences_total=record.sentences_total,
        progress=round(record.chars_done / record.chars_total, 4) if record.chars_total else 0.0,
        audio_seconds=round(record.audio_seconds, 3), eta_s=eta, warnings=list(record.warnings),
        error=record.error, format=request.format, attempts=record.attempts, created_at=record.created_at,
        started_at=record.started_at, finished_at=record.finished_at, audio_url=f"/jobs/{record.id}/audio",
    )


def parse_state(value: str | None) -> JobState | None:
    if value is None or value == "":
        return None
    try:
        return JobState(value)
    except ValueError:
        raise InvalidInput(f"state {value!r} is not a job state; use one of {', '.join(JOB_STATES)}",
                           field="state") from None


def encode_sentence(audio: np.ndarray, sample_rate: int) -> bytes:
    """(T,) float32 -> 16-bit FLAC bytes (the stored form)."""
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(audio, -1.0, 1.0), sample_rate, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()


def decode_sentence(data: bytes) -> np.ndarray:
    """Stored FLAC bytes -> (T,) float32."""
    samples, _ = sf.read(io.BytesIO(data), dtype="float32", always_2d=False)
    return np.asarray(samples, dtype=np.float32).reshape(-1)


@dataclass(frozen=True)
class JobAudio:
    """A job's audio so far: the encoded file and what it holds."""

    status: JobStatus
    body: bytes
    output: OutputSpec
    sample_rate: int
    seconds: float


async def job_audio(store: JobStore, job_id: str) -> JobAudio:
    """The finished sentences joined as ``/synthesize`` joins them, in the job's format.

    While the job runs this is the part done so far; before its first
    sentence there is nothing to return (409 with Retry-After).
    """
    record, sentences = await asyncio.to_thread(store.sentences, job_id)
    status = job_status(record)
    if not sentences:
        error = Conflict(
            f"job {job_id} has no finished sentence yet (state {record.state.value}); poll GET /jobs/{job_id}",
            field="id",
        )
        error.retry_after_s = 2.0
        raise error
    output = JobRequest.model_validate_json(record.request).output
    rate = sentences[0].sample_rate

    def assemble() -> tuple[bytes, int, float]:
        audio = crossfade_concat([decode_sentence(sentence.audio) for sentence in sentences], rate)
        body, body_rate = output.encode(audio, rate)
        return body, body_rate, round(audio.size / output.speed) / rate

    body, body_rate, seconds = await asyncio.to_thread(assemble)
    return JobAudio(status=status, body=body, output=output, sample_rate=body_rate, seconds=seconds)
