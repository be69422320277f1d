"""The released ``BiCodec/config.yaml`` of Spark-TTS-0.5B (docs/spark_tts_reference.md), as a mapping."""

from __future__ import annotations

from sparktts.official import BICODEC_CONFIG as OFFICIAL_CONFIG

__all__ = ["OFFICIAL_CONFIG"]
