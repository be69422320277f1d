"""Request accounting, and the one loop every streaming response runs.

``RequestTracker`` counts and times one request in the services' counters and
the Prometheus metrics. ``stream_sentences`` drives a pipeline stream for a
streaming response (HTTP or WebSocket), whatever its unit: whole sentences
(``SentenceAudio``) or chunks (``RenderedChunk``, granularity=chunk). It
observes each item, renders it, turns a
``VoiceError`` into the response's own error item (or re-raises it when the
response has none), records a client that went away as cancelled (499),
and always closes the pipeline's iterator, which cancels the request's
remaining TTS and RVC work.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import TypeVar

from starlette.requests import HTTPConnection

from rvc.errors import VoiceError
from rvc.processing.chunk_output import RenderedChunk
from rvc.processing.chunk_pipeline import ChunkAudio
from rvc.processing.pipeline import SentenceAudio
from rvc.processing.services import VoiceServices

__all__ = ["RequestTracker", "run_tracked", "stream_sentences"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
Item = TypeVar("Item")


class RequestTracker:
    """Counts and times one request in the services' counters and the metrics."""

    def __init__(self, request: HTTPConnection, route: str) -> None:
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

    def observe(self, item: object) -> None:
        """Count a sentence's or a chunk's stages and audio (other stream items count nothing)."""
        if isinstance(item, RenderedChunk | ChunkAudio):
            self.metrics.audio_seconds.inc(item.duration_s)
            self.metrics.stage_seconds.labels("tts").observe(item.tts_s)
            self.metrics.stage_seconds.labels("rvc").observe(item.rvc_s)
            return
        if isinstance(item, SentenceAudio):
            self.observe_sentence(item.tts_time, item.rvc_time, item.duration_s, bool(item.warnings))


async def run_tracked(tracker: RequestTracker, work: Awaitable[T], *, finish: bool = True) -> T:
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


async def stream_sentences(
    tracker: RequestTracker,
    sentences: AsyncGenerator[Item, None],
    render: Callable[[Item], Awaitable[T]],
    *,
    first: Item | None = None,
    end: Callable[[], Awaitable[T]] | None = None,
    on_error: Callable[[VoiceError], T] | None = None,
) -> AsyncGenerator[T, None]:
    """``render(item)`` per sentence or chunk (``first`` already taken from ``sentences``), then ``end()``.

    A ``VoiceError`` mid-stream (Triton or the workers gone: 503) becomes
    ``on_error(error)`` as the last item, and so does any other exception (as
    an internal error, logged); without ``on_error`` it propagates and the
    response is cut short. The
    request is finished with its status on every path; ``sentences`` is
    always closed.
    """
    status = 200
    try:
        sentence = first if first is not None else await anext(sentences, None)
        while sentence is not None:
            tracker.observe(sentence)
            yield await render(sentence)
            sentence = await anext(sentences, None)
        if end is not None:
            yield await end()
    except VoiceError as error:
        status = error.status_code
        if on_error is None:
            logger.warning("%s failed mid-stream, the response is cut short: %s", tracker.route, error)
            raise
        yield on_error(error)
    except (asyncio.CancelledError, GeneratorExit):  # the client went away, mid-work or between items
        tracker.finish(499, cancelled=True)
        raise
    except Exception:
        status = 500
        if on_error is None:
            raise
        # A bug, not a backend down: logged with its traceback, and still an error item, not a cut stream.
        logger.exception("%s failed mid-stream", tracker.route)
        yield on_error(VoiceError("internal error; the request id identifies it in the server log"))
    finally:
        await sentences.aclose()
        tracker.finish(status)
