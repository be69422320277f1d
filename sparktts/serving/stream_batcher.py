"""``SparkLM.stream`` for concurrent consumers, decoded together by one thread.

A streaming ``spark_tts`` runs each request in its own worker thread; with ``SparkLM.stream`` each
thread decodes its one sequence, so N concurrent streams pay N single-row forwards per step,
whereas one forward of N rows costs little more than one on a CPU. ``StreamBatcher.stream`` keeps
``SparkLM.stream``'s contract (the same ids for a seeded request, up to the last float bits of a
batched matmul) but hands the request to one decode thread that steps every active row together
(``sparktts.llm_batch.ContinuousBatch``); each consumer reads its ids from its own queue.

* A new request joins at the next step boundary (its prompt is prefilled alone, then merged).
* A consumer that closes or drops its iterator leaves the batch at the next step boundary.
* A failure in the decode thread ends every active stream with that exception; the rows are
  dropped and the next request starts a fresh batch.
* Rows with and without ``restrict_vocab`` decode as two batches, stepped one after the other.
* The batches are ``ContinuousBatch``es of a torch ``SparkLM`` unless ``new_batch`` makes others
  with the same contract (``sparktts.llm_batch.DecodeBatch``), such as ``sparktts.llm_onnx.OnnxBatch``.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import torch

from sparktts.decode_rows import DecodeBatch, RowToken
from sparktts.generation import GenerationParams
from sparktts.llm_vocab import SparkVocabulary

logger = logging.getLogger(__name__)

_POLL_S = 1.0  # how often a waiting consumer checks that the decode thread still runs


class BatcherClosed(RuntimeError):
    """The batcher was closed while (or before) this stream decoded."""


@dataclass(frozen=True)
class _StreamEnd:
    """The last item of a consumer's queue: a normal end, or the exception the stream fails with."""

    error: BaseException | None = None


@dataclass
class _Consumer:
    key: int
    input_ids: torch.Tensor  # (1, L) int64, the encoded prompt
    params: GenerationParams
    items: queue.SimpleQueue[int | _StreamEnd] = field(default_factory=queue.SimpleQueue)


class StreamBatcher:
    """One decode thread for every concurrent ``stream``; ``close`` stops it.

    on_logits: passed to each ``ContinuousBatch`` (diagnostics and tests). It runs in the decode
    thread, so an exception it raises is a decode failure: during a step it fails every active
    stream, during a prefill only the joining one.
    new_batch(restrict_vocab) -> an empty batch for the rows of that kind; None: ``ContinuousBatch``es
    of ``lm``, which must then be a ``SparkLM`` (on_logits goes to them; a ``new_batch`` wires its own).
    """

    def __init__(
        self,
        lm: SparkVocabulary,
        *,
        on_logits: Callable[[Sequence[int], torch.Tensor], None] | None = None,
        new_batch: Callable[[bool], DecodeBatch] | None = None,
    ) -> None:
        if new_batch is None:
            # here, not at the top: another engine's batches (new_batch) need no torch model code
            from sparktts.llm import SparkLM
            from sparktts.llm_batch import ContinuousBatch

            if not isinstance(lm, SparkLM):
                raise TypeError(f"StreamBatcher needs new_batch for a {type(lm).__name__}")
            torch_lm = lm

            def new_batch(restrict: bool) -> DecodeBatch:
                return ContinuousBatch(torch_lm, restrict_vocab=restrict, on_logits=on_logits)

        self.lm = lm
        self._new_batch = new_batch
        self._keys = itertools.count()
        self._wake = threading.Condition()
        self._joining: list[_Consumer] = []
        self._leaving: set[int] = set()
        self._closed = False
        self._active: dict[int, _Consumer] = {}  # decode thread only
        self._batches = self._new_batches()  # decode thread only
        self._thread = threading.Thread(target=self._run, name="spark-decode", daemon=True)
        self._thread.start()

    def stream(self, prompt: str, params: GenerationParams) -> Iterator[int]:
        """Yield generated ids one by one (the stop id last, if reached), as ``SparkLM.stream``."""
        consumer = _Consumer(next(self._keys), self.lm.encode(prompt), params)
        with self._wake:
            if self._closed:
                raise BatcherClosed("the stream batcher is closed")
            self._joining.append(consumer)
            self._wake.notify()
        finished = False
        try:
            while True:
                try:
                    item = consumer.items.get(timeout=_POLL_S)
                except queue.Empty:
                    if not self._thread.is_alive():  # it ends every stream before it stops
                        raise BatcherClosed("the stream batcher's decode thread has stopped") from None
                    continue
                if isinstance(item, _StreamEnd):
                    finished = True
                    if item.error is not None:
                        raise item.error
                    return
                yield item
        finally:
            if not finished:  # closed or dropped by its consumer: free its row
                with self._wake:
                    self._leaving.add(consumer.key)
                    self._wake.notify()

    def active_rows(self) -> int:
        """Rows decoding now (a snapshot, for tests and logs)."""
        return sum(len(batch) for batch in self._batches.values())

    def close(self, timeout_s: float = 30.0) -> None:
        """Stop the decode thread; streams still running end with ``BatcherClosed``."""
        with self._wake:
            self._closed = True
            self._wake.notify()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout_s)

    # ------------------------------------------------------------------ the decode thread
    def _new_batches(self) -> dict[bool, DecodeBatch]:
        return {restrict: self._new_batch(restrict) for restrict in (False, True)}

    def _run(self) -> None:
        while True:
            with self._wake:
                while not (self._closed or self._joining or self._leaving or self._active):
                    self._wake.wait()
                if self._closed:
                    break
                joining, self._joining = self._joining, []
                leaving, self._leaving = self._leaving, set()
            joining = [consumer for consumer in joining if consumer.key not in leaving]
            self._active.update((consumer.key, consumer) for consumer in joining)
            try:
                for key in leaving:
                    for batch in self._batches.values():
                        batch.leave(key)
                    self._active.pop(key, None)
                for consumer in joining:
                    self._join(consumer)
                for batch in self._batches.values():
                    self._deliver(batch.step())
            except Exception as exc:  # noqa: BLE001 - handed to every stream of the failed step
                logger.warning("decode step failed for %d streams: %s", len(self._active), exc)
                self._fail_all(exc)
        self._fail_all(BatcherClosed("the stream batcher is closed"))
        with self._wake:
            joining, self._joining = self._joining, []
        for consumer in joining:
            consumer.items.put(_StreamEnd(BatcherClosed("the stream batcher is closed")))

    def _join(self, consumer: _Consumer) -> None:
        """Prefill and merge one request; its failure (a bad prompt, out of memory) is its own."""
        try:
            first = self._batches[consumer.params.restrict_vocab].join(consumer.key, consumer.input_ids,
                                                                       consumer.params)
        except Exception as exc:  # noqa: BLE001 - this request's failure, handed to its consumer
            del self._active[consumer.key]
            consumer.items.put(_StreamEnd(exc))
            return
        self._deliver([first])

    def _deliver(self, drawn: list[RowToken]) -> None:
        for row in drawn:
            consumer = self._active[row.key]
            consumer.items.put(row.token)
            if row.last:
                consumer.items.put(_StreamEnd())
                del self._active[row.key]

    def _fail_all(self, error: BaseException) -> None:
        for batch in self._batches.values():
            batch.clear()
        for consumer in self._active.values():
            consumer.items.put(_StreamEnd(error))
        self._active.clear()
