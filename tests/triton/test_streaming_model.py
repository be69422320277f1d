"""Both contracts on one real tritonserver: the offline ``spark_tts`` beside the decoupled
``spark_tts_decoupled`` (same inputs), the official streaming client's request shapes against the
latter, per-request chunk schedules, the asyncio client's ``stream_audio`` (chunks that concatenate
to the whole waveform) and cancellation in Triton when its iterator is closed."""

from __future__ import annotations

import asyncio
import re
import time

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from rvc.errors import InvalidInput, TTSBackendError
from rvc.grpc import contract
from rvc.grpc.client import AsyncTritonSparkClient, AudioChunk, ChunkPlan, TTSParams, join_chunks
from rvc.grpc.launcher import TritonServer
from sparktts.llm import GenerationParams
from sparktts.streaming import ChunkSchedule, crossfade_join
from tests.triton.conftest import MAX_NEW_TOKENS, TEXT, Reference, official_inputs, official_stream

STREAMING = contract.SPARK_TTS_DECOUPLED
OVERLAP = 5 * 320  # the default overlap, which the official client assumes (0.1 s)


def model_stats(server: TritonServer, model: str) -> dict:
    response = httpx.get(f"{server.http_url}/v2/models/{model}/stats", timeout=30)
    response.raise_for_status()
    return response.json()["model_stats"][0]


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, timeout=300))


async def stream_both(url: str, reference: Reference, params: TTSParams) -> tuple[list[AudioChunk], list[np.ndarray]]:
    """stream_audio's chunks and, for the same request, the raw chunks the server sends."""
    async with AsyncTritonSparkClient(url, model_name=STREAMING) as aio:
        joined = [c async for c in aio.stream_audio(TEXT, reference.wav, reference.text, params,
                                                     reference_sample_rate=reference.sample_rate)]
        raw = [c async for c in aio.stream(TEXT, reference.wav, reference.text, params,
                                           reference_sample_rate=reference.sample_rate)]
    return joined, raw


def test_one_server_serves_both_contracts(offline_server: TritonServer) -> None:
    index = httpx.post(f"{offline_server.http_url}/v2/repository/index", timeout=30).json()
    ready = {entry["name"] for entry in index if entry.get("state") == "READY"}
    assert {contract.SPARK_TTS, STREAMING, contract.AUDIO_TOKENIZER, contract.VOCODER} <= ready
    configs = {
        name: httpx.get(f"{offline_server.http_url}/v2/models/{name}/config", timeout=30).json()
        for name in (contract.SPARK_TTS, STREAMING)
    }
    offline, streaming = configs[contract.SPARK_TTS], configs[STREAMING]
    assert offline["model_transaction_policy"]["decoupled"] is False and "dynamic_batching" in offline
    assert streaming["model_transaction_policy"]["decoupled"] is True
    assert offline["input"] == streaming["input"] and offline["output"] == streaming["output"]


def test_official_streaming_client_gets_all_audio_from_the_streaming_model(
    offline_server: TritonServer, spark_tts, reference: Reference
) -> None:
    """client_grpc.py --mode streaming --model-name spark_tts_decoupled: a padded [1, N] clip, both
    texts, enable_empty_final_response=True, reading until the FINAL flag, and its fixed 0.1 s
    cross-fade: the default schedule (15-token first chunk, then 25) joins to the whole waveform."""
    inputs = official_inputs(grpcclient, reference, spark_tts, TEXT, padding_s=10)
    audios = official_stream(offline_server.grpc_url, inputs, "official-streaming")
    tokens = [a.size // 320 for a in audios]
    assert tokens[:3] == [15, 25, 25] and all(10 <= t <= 25 for t in tokens)
    waveform = official_reconstruction(audios, int(0.1 * 16000))
    assert waveform.size == 320 * MAX_NEW_TOKENS
    np.testing.assert_allclose(waveform, join_chunks(audios, OVERLAP), atol=1e-6)


def official_reconstruction(audios: list[np.ndarray], cross_fade_samples: int) -> np.ndarray:
    """The official client's join: first chunk minus the overlap, then per chunk the cross-faded
    overlap and its middle (which assumes chunks of at least two overlaps), then the last overlap."""
    if len(audios) == 1:
        return audios[0]
    fade_out, fade_in = np.linspace(1, 0, cross_fade_samples), np.linspace(0, 1, cross_fade_samples)
    out = audios[0][:-cross_fade_samples]
    for previous, chunk in zip(audios, audios[1:], strict=False):
        faded = chunk[:cross_fade_samples] * fade_in + previous[-cross_fade_samples:] * fade_out
        out = np.concatenate([out, faded, chunk[cross_fade_samples:-cross_fade_samples]])
    return np.concatenate([out, audios[-1][-cross_fade_samples:]])


def test_stream_audio_chunks_concatenate_to_the_whole_waveform(offline_server: TritonServer, reference: Reference) -> None:
    joined, raw = run(stream_both(offline_server.grpc_url, reference, TTSParams(seed=31)))
    assert [c.index for c in joined] == list(range(len(joined))) and len(joined) == len(raw) + 1
    assert [c.final for c in joined] == [False] * (len(joined) - 1) + [True]
    assert [c.sample_offset for c in joined] == [0, *np.cumsum([c.audio.size for c in joined])[:-1].tolist()]
    assert all(a.received_s <= b.received_s for a, b in zip(joined, joined[1:], strict=False))
    # Every chunk but the held-back tail: its server chunk minus the overlap it waits to cross-fade.
    assert [c.audio.size for c in joined[:-1]] == [raw[0].size - OVERLAP, *(r.size - OVERLAP for r in raw[1:])]
    assert joined[-1].audio.size == OVERLAP
    waveform = np.concatenate([c.audio for c in joined])
    assert waveform.size == joined[-1].end_offset == 320 * MAX_NEW_TOKENS
    np.testing.assert_array_equal(waveform, join_chunks(raw, OVERLAP))


def test_chunk_schedule_is_a_request_parameter(offline_server: TritonServer, spark_tts, reference: Reference) -> None:
    plan = ChunkPlan(first_tokens=10, steady_tokens=40, scale=4.0, overlap_tokens=3)
    joined, raw = run(stream_both(offline_server.grpc_url, reference, TTSParams(seed=32, chunks=plan)))
    assert [r.size // 320 for r in raw[:3]] == [10, 40, 40]
    waveform = np.concatenate([c.audio for c in joined])
    assert waveform.size == 320 * MAX_NEW_TOKENS
    np.testing.assert_array_equal(waveform, join_chunks(raw, 3 * 320))
    # The official 50 -> 400 -> 1500 schedule, still available, equals the in-process model's stream.
    official, raw = run(stream_both(offline_server.grpc_url, reference, TTSParams(seed=33, chunks=ChunkPlan.official())))
    expected = list(spark_tts.stream(
        TEXT, reference.wav, reference.text, prompt_sample_rate=reference.sample_rate,
        params=GenerationParams(seed=33, max_new_tokens=MAX_NEW_TOKENS), schedule=ChunkSchedule(),
    ))
    assert [r.size for r in raw] == [e.size for e in expected] and raw[0].size == 50 * 320
    np.testing.assert_array_equal(np.concatenate([c.audio for c in official]), crossfade_join(expected, OVERLAP))


def test_bad_requests_on_the_stream_are_the_projects_errors(offline_server: TritonServer, reference: Reference) -> None:
    async def first(client: AsyncTritonSparkClient, params: TTSParams, text: str = TEXT) -> AudioChunk:
        async for chunk in client.stream_audio(text, reference.wav, None, params,
                                               reference_sample_rate=reference.sample_rate):
            return chunk
        raise AssertionError("no chunk")

    async def check() -> None:
        async with AsyncTritonSparkClient(offline_server.grpc_url) as aio:
            with pytest.raises(InvalidInput, match=r"chunk schedule \(chunk_first_tokens=4, chunk_overlap_tokens=5\)"):
                await first(aio, TTSParams(chunks=ChunkPlan(first_tokens=4, overlap_tokens=5)))
            with pytest.raises(InvalidInput, match="target_text is empty"):
                await first(aio, TTSParams(), text=" ")
            assert (await first(aio, TTSParams(seed=1, max_new_tokens=20))).audio.size > 0  # still serving
        async with AsyncTritonSparkClient(offline_server.grpc_url, streaming_model_name=contract.SPARK_TTS) as wrong:
            with pytest.raises(TTSBackendError, match="not a streaming"):
                await first(wrong, TTSParams())

    run(check())


def test_closing_the_iterator_cancels_the_request_in_triton(offline_server: TritonServer, reference: Reference) -> None:
    """The stream asks for 3000 tokens (120 chunks of 25); the consumer takes one chunk and closes
    the iterator. Triton's own statistics show the request stopped: the vocoder ran exactly once
    per chunk sent before the cancellation was seen, not 120 times."""
    vocoder_before = model_stats(offline_server, contract.VOCODER)["inference_count"]
    streaming_before = model_stats(offline_server, STREAMING)["inference_stats"]["success"]["count"]

    async def one_chunk_then_close() -> AudioChunk:
        async with AsyncTritonSparkClient(offline_server.grpc_url) as aio:
            chunks = aio.stream_audio(TEXT, reference.wav, None, TTSParams(seed=4, max_new_tokens=3000),
                                      reference_sample_rate=reference.sample_rate, request_id="close-me")
            chunk = await anext(chunks)
            await chunks.aclose()
            return chunk

    first = run(one_chunk_then_close())
    assert first.index == 0 and first.audio.size == 15 * 320 - OVERLAP
    deadline = time.monotonic() + 120
    while (found := re.search(r"\[close-me\] cancelled after (\d+) chunks", offline_server.log_text(None))) is None:
        assert time.monotonic() < deadline, offline_server.log_text(40)
        time.sleep(0.2)  # polling the server's log for the model's own record, not a fixed wait
    sent = int(found.group(1))
    vocoded = model_stats(offline_server, contract.VOCODER)["inference_count"] - vocoder_before
    assert 1 <= sent <= 10 and vocoded == sent
    assert model_stats(offline_server, STREAMING)["inference_stats"]["success"]["count"] == streaming_before + 1
    with grpcclient.InferenceServerClient(offline_server.grpc_url) as after:
        assert after.is_model_ready(STREAMING) and after.is_model_ready(contract.SPARK_TTS)
