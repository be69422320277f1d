"""Prometheus metrics of the gateway, in a registry per app (tests build several apps)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["ApiMetrics", "SpeakerCacheCollector"]

# each speaker-cache statistic by its metric kind: sizes are gauges, event counts are counters
_CACHE_METRICS: tuple[tuple[type[GaugeMetricFamily | CounterMetricFamily], dict[str, str]], ...] = (
    (GaugeMetricFamily, {"entries": "reference clips held", "bytes": "bytes of tokens held"}),
    (CounterMetricFamily, {"hits": "lookups that found the clip", "misses": "lookups that did not",
                           "evictions": "clips dropped to stay within speaker_cache_size"}),
)


class SpeakerCacheCollector(Collector):
    """The speaker-token caches inside Triton, as of the last ``/metrics`` scrape (the route refreshes it).

    Triton's own endpoint has the same numbers per instance (``spark_speaker_cache_*``); in a fleet,
    every gateway repeats them, so sum over one gateway or scrape Triton, not over all gateways.
    """

    def __init__(self) -> None:
        self._stats: Mapping[str, Any] = {}

    def update(self, stats: Mapping[str, Any]) -> None:
        """Model name -> its stats (``SpeakerCacheStats`` as a dict); an ``error`` key: nothing to show."""
        self._stats = {model: values for model, values in stats.items() if isinstance(values, Mapping)}

    def collect(self) -> Iterator[Metric]:
        for family, help_texts in _CACHE_METRICS:
            for name, help_text in help_texts.items():
                metric = family(f"voice_tts_speaker_cache_{name}", f"speaker-token cache: {help_text}", labels=["model"])
                for model, values in self._stats.items():
                    metric.add_metric([model], float(values[name]))
                yield metric


@dataclass
class ApiMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.requests = Counter(
            "voice_api_requests_total", "HTTP requests by route and status", ["route", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "voice_api_request_duration_seconds", "time to the last byte of a response", ["route"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120), registry=self.registry,
        )
        self.in_flight = Gauge("voice_api_requests_in_flight", "requests being served", registry=self.registry)
        # The autoscaler's denominator: in-flight over capacity is how full this gateway is.
        self.capacity = Gauge(
            "voice_api_capacity", "requests this gateway converts at once (its RVC workers)", registry=self.registry
        )
        self.stage_seconds = Histogram(
            "voice_api_stage_seconds", "per-sentence stage time", ["stage"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30), registry=self.registry,
        )
        self.sentences = Counter("voice_api_sentences_total", "sentences synthesised", registry=self.registry)
        self.sentence_warnings = Counter(
            "voice_api_sentence_warnings_total", "sentences that hit the token budget or came back silent",
            registry=self.registry,
        )
        self.audio_seconds = Counter(
            "voice_api_audio_seconds_total", "seconds of audio returned", registry=self.registry
        )
        self.cancelled = Counter(
            "voice_api_cancelled_total", "requests whose client went away before the end", registry=self.registry
        )
        self.key_requests = Counter(
            "voice_api_key_requests_total", "requests accepted per API key (first 8 hex digits of its SHA-256)",
            ["key_id"], registry=self.registry,
        )
        self.auth_failures = Counter(
            "voice_api_auth_failures_total", "requests refused for a missing or wrong API key", registry=self.registry
        )
        self.speaker_cache = SpeakerCacheCollector()
        self.registry.register(self.speaker_cache)
