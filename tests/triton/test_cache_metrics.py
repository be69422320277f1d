"""The speaker cache's metrics: the names both sides spell, and the gateway's reading of Triton's text."""

from __future__ import annotations

from dataclasses import fields

from rvc.grpc import triton_metrics
from sparktts.serving import cache_metrics
from sparktts.serving.pipeline import CacheStats

# Triton's exposition of python-backend custom metrics (two instances of spark_tts, one decoupled).
TRITON_TEXT = """\
# HELP nv_inference_request_success Number of successful inference requests
# TYPE nv_inference_request_success counter
nv_inference_request_success{model="spark_tts",version="1"} 7
# HELP spark_speaker_cache_hits speaker-token cache hits
# TYPE spark_speaker_cache_hits counter
spark_speaker_cache_hits{instance="spark_tts_0_0",model="spark_tts"} 3
spark_speaker_cache_hits{instance="spark_tts_0_1",model="spark_tts"} 2
spark_speaker_cache_hits{instance="spark_tts_decoupled_0_0",model="spark_tts_decoupled"} 1
# HELP spark_speaker_cache_misses speaker-token cache misses
# TYPE spark_speaker_cache_misses counter
spark_speaker_cache_misses{instance="spark_tts_0_0",model="spark_tts"} 4
# HELP spark_speaker_cache_entries speaker-token cache entries
# TYPE spark_speaker_cache_entries gauge
spark_speaker_cache_entries{instance="spark_tts_0_0",model="spark_tts"} 4
spark_speaker_cache_entries{instance="spark_tts_0_1",model="spark_tts"} 1
# HELP spark_speaker_cache_bytes speaker-token cache bytes
# TYPE spark_speaker_cache_bytes gauge
spark_speaker_cache_bytes{instance="spark_tts_0_0",model="spark_tts"} 1400
"""


def test_both_sides_spell_the_metric_names_alike() -> None:
    assert cache_metrics.CACHE_METRIC_PREFIX == triton_metrics.CACHE_METRIC_PREFIX
    published = {*cache_metrics.GAUGES, *cache_metrics.COUNTERS}
    assert published == {field.name for field in fields(CacheStats)}
    assert published == {field.name for field in fields(triton_metrics.SpeakerCacheStats)}


def test_gateway_sums_the_instances_of_each_model_and_ignores_other_metrics() -> None:
    stats = triton_metrics.parse_speaker_cache(TRITON_TEXT)
    assert stats == {
        "spark_tts": triton_metrics.SpeakerCacheStats(entries=5, bytes=1400, hits=5, misses=4, evictions=0),
        "spark_tts_decoupled": triton_metrics.SpeakerCacheStats(hits=1),
    }
    assert triton_metrics.parse_speaker_cache("") == {}
