"""The speaker-token cache's numbers, read from Triton's Prometheus endpoint.

The ``spark_tts`` models publish them as Triton custom metrics
(``sparktts.serving.cache_metrics``: ``spark_speaker_cache_*``, labelled ``model`` and
``instance``); this module reads them back for ``/status`` and the gateway's ``/metrics``, summed
over the instances of each model. The names are the wire contract between the two sides
(``tests/triton`` checks that both spell them alike). A model that is unloaded (idle unload) or
has not served yet publishes nothing: it is simply absent.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import httpx
from prometheus_client.parser import text_string_to_metric_families

from rvc.errors import TTSBackendError

__all__ = ["CACHE_METRIC_PREFIX", "SpeakerCacheStats", "parse_speaker_cache", "read_speaker_cache"]

CACHE_METRIC_PREFIX = "spark_speaker_cache_"


@dataclass(frozen=True)
class SpeakerCacheStats:
    """One model's speaker-token caches (all its instances): held now, and lookups since it loaded."""

    entries: int = 0
    bytes: int = 0
    hits: int = 0
    misses: int = 0
    evictions: int = 0


_FIELDS = tuple(field.name for field in fields(SpeakerCacheStats))


def parse_speaker_cache(text: str) -> dict[str, SpeakerCacheStats]:
    """Prometheus text -> model name -> its cache stats (instances summed)."""
    totals: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if not sample.name.startswith(CACHE_METRIC_PREFIX):
                continue
            # counters may come back with the _total suffix the exposition format adds
            name = sample.name[len(CACHE_METRIC_PREFIX):].removesuffix("_total")
            if name not in _FIELDS:
                continue
            model = sample.labels.get("model", "")
            per_model = totals.setdefault(model, dict.fromkeys(_FIELDS, 0.0))
            per_model[name] += sample.value
    return {
        model: SpeakerCacheStats(**{name: int(value) for name, value in values.items()})
        for model, values in sorted(totals.items())
    }


async def read_speaker_cache(metrics_url: str, *, timeout_s: float = 2.0) -> dict[str, SpeakerCacheStats]:
    """Fetch Triton's ``/metrics`` and parse the cache's; TTSBackendError when it cannot be read."""
    try:
        async with httpx.AsyncClient(timeout=timeout_s) as client:
            response = await client.get(metrics_url)
            response.raise_for_status()
    except httpx.HTTPError as exc:
        raise TTSBackendError(f"Triton's metrics at {metrics_url} could not be read: {exc}") from exc
    return parse_speaker_cache(response.text)
