"""bench/bench_triton.py's two modes against the real server (what gpu_check step 7 runs on a GPU):
offline waits for whole answers from ``spark_tts``, streaming reads chunks from the decoupled model."""

from __future__ import annotations

import asyncio

import pytest

from bench.bench_triton import SEMANTIC_TOKENS_PER_S, reference_clip, run_triton, serving_model, summarize
from rvc.grpc import contract
from rvc.grpc.launcher import TritonServer


def test_offline_mode_asks_spark_tts_and_waits_for_the_whole_answer(offline_server: TritonServer) -> None:
    url = offline_server.grpc_url
    assert asyncio.run(serving_model(url, "offline")) == contract.SPARK_TTS
    samples = asyncio.run(run_triton(url, reference_clip(), [1, 2], 2, 20, "offline"))
    assert len(samples) == 2
    assert all(sample.first_chunk_s == sample.total_s and sample.audio_s > 0 for sample in samples)
    level = summarize("triton", "offline", 2, samples, 2.0, None)
    assert level.mode == "offline" and level.rtf == pytest.approx(2.0 / sum(s.audio_s for s in samples))
    assert level.tokens_per_s == pytest.approx(sum(s.audio_s for s in samples) * SEMANTIC_TOKENS_PER_S / 2.0)


def test_streaming_mode_reads_the_decoupled_model_beside_the_offline_one(offline_server: TritonServer) -> None:
    url = offline_server.grpc_url
    assert asyncio.run(serving_model(url, "streaming")) == contract.SPARK_TTS_DECOUPLED
    (sample,) = asyncio.run(run_triton(url, reference_clip(), [3], 1, 60, "streaming"))
    assert 0 < sample.first_chunk_s <= sample.total_s and sample.audio_s > 0
