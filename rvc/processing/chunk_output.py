"""Chunked audio in the client's format and rate (the streaming wire protocol's body rule).

Every chunk passes one soxr streaming resampler per request, so chunk joins leave no seam and
``sample_offset`` / ``samples`` count output samples exactly: their sum is the output's length.
Bodies: ``wav``, ``wav_float`` and ``flac`` a complete small file per chunk; ``pcm`` raw s16le;
``opus``, ``mp3`` and ``aac`` the frames of one continuous encoder, so the bodies of all chunks
concatenate to one valid file. The resampler's and encoder's tails leave in ``finish`` as a last
chunk of their own.

``speed`` is not streamable: the WSOLA stretch needs the whole sentence around each frame.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterable
from contextlib import aclosing
from dataclasses import dataclass

import numpy as np

from rvc.errors import InvalidInput
from rvc.processing.chunk_pipeline import ChunkAudio, ChunkJob, ChunkPipeline, ChunkStream, SentenceStart
from rvc.processing.formats import OutputSpec, StreamEncoder, StreamResampler, encode_audio

__all__ = [
    "CONTINUOUS_FORMATS",
    "ChunkRenderer",
    "RenderedChunk",
    "chunk_audio",
    "check_chunk_output",
    "rendered_events",
]

CONTINUOUS_FORMATS = frozenset({"opus", "mp3", "aac"})


def check_chunk_output(spec: OutputSpec) -> None:
    """InvalidInput when ``spec`` cannot be streamed chunk by chunk."""
    if spec.speed != 1.0:
        raise InvalidInput(
            f"speed={spec.speed:g} cannot be streamed with granularity=chunk (the time stretch needs whole "
            "sentences): use granularity=sentence, or leave speed out",
            field="speed",
        )


@dataclass(frozen=True)
class RenderedChunk:
    """One chunk as it goes on the wire; ``samples`` at ``sample_rate`` starting at ``sample_offset``."""

    index: int
    sentence: int
    sample_offset: int
    samples: int
    sample_rate: int
    body: bytes
    elapsed_s: float
    tts_s: float
    rvc_s: float

    @property
    def duration_s(self) -> float:
        return self.samples / self.sample_rate


class ChunkRenderer:
    """Turns one request's ``ChunkAudio``s (at ``source_rate``) into ``RenderedChunk``s; not thread-safe."""

    def __init__(self, spec: OutputSpec, source_rate: int) -> None:
        check_chunk_output(spec)
        self.spec = spec
        self.source_rate = source_rate
        self.rate = spec.output_rate(source_rate)
        self._resampler = StreamResampler(source_rate, self.rate)
        self._encoder = (
            StreamEncoder(OutputSpec(spec.format, self.rate), self.rate) if spec.format in CONTINUOUS_FORMATS else None
        )
        self._index = 0
        self._offset = 0
        self._last: ChunkAudio | None = None

    def _body(self, samples: np.ndarray, *, last: bool) -> bytes:
        if self._encoder is not None:
            data = self._encoder.push(samples)
            return data + self._encoder.finish() if last else data
        if not samples.size:
            return b""
        return encode_audio(samples, self.rate, self.spec.format)

    def _emit(self, samples: np.ndarray, chunk: ChunkAudio, *, last: bool, tts_s: float, rvc_s: float) -> RenderedChunk | None:
        body = self._body(samples, last=last)
        if not samples.size and not body:
            return None
        rendered = RenderedChunk(
            self._index, chunk.sentence, self._offset, int(samples.size), self.rate, body, chunk.elapsed_s, tts_s, rvc_s
        )
        self._index += 1
        self._offset += int(samples.size)
        return rendered

    def render(self, chunk: ChunkAudio) -> RenderedChunk | None:
        """The chunk in the output's rate and format; None when the resampler kept all of it for now."""
        self._last = chunk
        return self._emit(self._resampler.push(chunk.audio), chunk, last=False, tts_s=chunk.tts_s, rvc_s=chunk.rvc_s)

    def finish(self) -> RenderedChunk | None:
        """The resampler's and encoder's tails as a last chunk (None when there is nothing left)."""
        if self._last is None:
            if self._encoder is None:
                return None
            data = self._encoder.finish()  # an empty but valid stream for a text that spoke nothing
            return RenderedChunk(0, 0, 0, 0, self.rate, data, 0.0, 0.0, 0.0) if data else None
        return self._emit(self._resampler.finish(), self._last, last=True, tts_s=0.0, rvc_s=0.0)

    @property
    def chunks(self) -> int:
        return self._index

    @property
    def samples(self) -> int:
        return self._offset


async def rendered_events(
    stream: ChunkStream, sentences: AsyncIterable[str], spec: OutputSpec
) -> AsyncGenerator[RenderedChunk | SentenceStart, None]:
    """``stream``'s events with the audio rendered for the wire (encoding off the event loop).

    Closing this generator closes ``stream``: the TTS request is cancelled and the RVC stream closed.
    """
    async with stream:
        renderer = ChunkRenderer(spec, stream.sample_rate)
        async with aclosing(stream.events(sentences)) as events:
            async for event in events:
                if isinstance(event, SentenceStart):
                    yield event
                    continue
                rendered = await asyncio.to_thread(renderer.render, event)
                if rendered is not None:
                    yield rendered
        last = await asyncio.to_thread(renderer.finish)
        if last is not None:
            yield last


async def chunk_audio(
    pipeline: ChunkPipeline, job: ChunkJob, sentences: AsyncIterable[str], spec: OutputSpec
) -> AsyncGenerator[RenderedChunk, None]:
    """The HTTP routes' chunks (no sentence markers): the RVC stream opens on the first read and
    closes when this generator ends or is closed."""
    stream = await pipeline.open(job)
    async with stream, aclosing(rendered_events(stream, sentences, spec)) as events:
        async for event in events:
            if isinstance(event, RenderedChunk):
                yield event
