"""Prometheus metrics of the gateway, in a registry per app (tests build several apps)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["ApiMetrics"]


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
