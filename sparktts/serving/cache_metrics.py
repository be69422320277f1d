"""The speaker-token cache's numbers as Triton custom metrics, published off the request path.

The cache lives inside the ``spark_tts`` stub process, which the gateway cannot ask directly.
Triton's custom metrics (python backend ``pb_utils.MetricFamily``) put them on the server's own
Prometheus endpoint (``:8002/metrics``), beside Triton's per-model counters: no extra model, no
extra tensor on every response, and the same endpoint serves a remote Triton. Each metric update
is an IPC round trip to the server, so requests never make one: the cache only sets an event
(``SpeakerCache.on_change``) and a publisher thread pushes the difference since its last push.

Names: ``spark_speaker_cache_{entries,bytes}`` (gauges) and
``spark_speaker_cache_{hits,misses,evictions}`` (counters), labelled ``model`` and ``instance``
(each instance of a model holds its own cache). ``rvc.grpc.triton_metrics`` reads them back.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from sparktts.serving.pipeline import CacheStats, SpeakerCache

__all__ = ["CACHE_METRIC_PREFIX", "COUNTERS", "GAUGES", "CacheMetricsPublisher"]

logger = logging.getLogger(__name__)

CACHE_METRIC_PREFIX = "spark_speaker_cache_"
GAUGES = ("entries", "bytes")
COUNTERS = ("hits", "misses", "evictions")


class CacheMetricsPublisher:
    """``notify()`` from any thread (cheap); a daemon thread publishes ``cache.stats()`` to Triton.

    ``pb_utils`` is passed in (tests pass a recorder). ``close()`` stops the thread and drops the
    metrics before their families, the order the python backend requires.
    """

    def __init__(self, pb_utils: Any, labels: dict[str, str]) -> None:
        family = pb_utils.MetricFamily
        self._families = {
            name: family(
                name=f"{CACHE_METRIC_PREFIX}{name}",
                description=f"speaker-token cache {name}",
                kind=family.GAUGE if name in GAUGES else family.COUNTER,
            )
            for name in (*GAUGES, *COUNTERS)
        }
        self._metrics = {name: family_.Metric(labels=labels) for name, family_ in self._families.items()}
        self._published = CacheStats(0, 0, 0, 0, 0)
        self._cache: SpeakerCache | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="speaker-cache-metrics", daemon=True)

    def watch(self, cache: SpeakerCache) -> None:
        """Start publishing ``cache`` (its ``on_change`` must call ``notify``)."""
        self._cache = cache
        self._thread.start()
        self.notify()

    def notify(self) -> None:
        self._wake.set()

    def publish(self) -> None:
        """Push the change since the last push (the thread calls it; tests may too)."""
        if self._cache is None:
            return
        now = self._cache.stats()
        for name in GAUGES:
            self._metrics[name].set(float(getattr(now, name)))
        for name in COUNTERS:
            delta = getattr(now, name) - getattr(self._published, name)
            if delta > 0:
                self._metrics[name].increment(float(delta))
        self._published = now

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.publish()
            except Exception as exc:  # noqa: BLE001 - metrics must never take the model down
                logger.warning("could not publish the speaker cache metrics: %s", exc)

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._metrics.clear()
        self._families.clear()
