"""rvc.grpc.client: error mapping, chunk joining, parameter checks, an unreachable server, and the
asyncio client against both repository variants and the audio tokenizer."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from tritonclient.utils import InferenceServerException

from rvc.errors import InvalidInput, TTSBackendError
from rvc.grpc import contract
from rvc.grpc.client import (
    AsyncTritonSparkClient,
    ChunkPlan,
    TritonSparkClient,
    TTSParams,
    build_inputs,
    join_chunks,
    map_error,
)
from rvc.grpc.launcher import TritonServer
from sparktts.streaming import crossfade_join
from tests.conftest import free_port
from tests.triton.conftest import TEXT, Reference


@pytest.mark.parametrize(
    ("status", "message", "kind", "shown"),
    [
        (None, "invalid input: target_text is empty", InvalidInput, "target_text is empty"),
        ("StatusCode.INVALID_ARGUMENT", "[request id: x] expected 4 inputs but got 2", InvalidInput, "expected 4"),
        (None, "[request id: x] expected 3 inputs but got 1 inputs for model 'spark_tts'", InvalidInput, "expected 3"),
        ("StatusCode.UNAVAILABLE", "failed to connect", TTSBackendError, "unreachable"),
        ("StatusCode.DEADLINE_EXCEEDED", "Deadline Exceeded", TTSBackendError, "in time"),
        ("StatusCode.INTERNAL", "RuntimeError: vocoder: boom", TTSBackendError, "boom"),
        (None, "RuntimeError: the LLM generated no semantic tokens", TTSBackendError, "no semantic"),
        (None, "ValueError: expected 32 global ids, got 31", TTSBackendError, "expected 32"),
    ],
)
def test_tritonclient_errors_map_to_the_project_tree(status, message, kind, shown) -> None:
    mapped = map_error(InferenceServerException(msg=message, status=status), "127.0.0.1:1")
    assert type(mapped) is kind and shown in mapped.message


def test_join_chunks_equals_the_sparktts_crossfade() -> None:
    rng = np.random.default_rng(0)
    chunks = [rng.standard_normal(n).astype(np.float32) for n in (16000, 128000, 4000)]
    joined = join_chunks(chunks, 1600)
    np.testing.assert_array_equal(joined, crossfade_join(chunks, 1600))
    assert joined.size == sum(c.size for c in chunks) - 2 * 1600
    np.testing.assert_array_equal(join_chunks([chunks[0]], 1600), chunks[0])
    assert join_chunks([], 1600).size == 0


def test_params_are_checked_before_sending() -> None:
    with pytest.raises(InvalidInput, match="top_p"):
        TTSParams(top_p=0.0)
    with pytest.raises(InvalidInput, match="max_new_tokens"):
        TTSParams(max_new_tokens=0)
    inputs = {i.name(): i for i in build_inputs("hi", np.zeros(10), None, TTSParams(seed=5), reference_sample_rate=8000)}
    assert set(inputs) == {"reference_wav", "reference_wav_len", "target_text", "reference_sample_rate", "seed"}
    assert inputs["reference_wav"].shape() == [1, 10] and inputs["seed"].datatype() == "INT64"


def test_unreachable_server_is_a_backend_error() -> None:
    with TritonSparkClient(f"127.0.0.1:{free_port()}", timeout_s=5) as client:
        assert client.is_server_ready() is False
        with pytest.raises(TTSBackendError, match="unreachable"):
            client.inference(TEXT, np.zeros(16000, np.float32))

    async def run() -> bool:
        async with AsyncTritonSparkClient(f"127.0.0.1:{free_port()}", timeout_s=5) as aio:
            return await aio.is_server_ready()

    assert asyncio.run(run()) is False


def test_async_client_works_on_both_variants(
    offline_server: TritonServer, streaming_server: TritonServer, reference: Reference
) -> None:
    params = TTSParams(seed=8, max_new_tokens=120, chunks=ChunkPlan.official())  # offline spark_tts ignores chunks

    async def run(url: str, model_name: str) -> tuple[np.ndarray, list[np.ndarray], int]:
        async with AsyncTritonSparkClient(url, model_name=model_name) as aio:
            assert await aio.is_server_ready()
            wav, rate = await aio.inference(TEXT, reference.wav, reference.text, params,
                                            reference_sample_rate=reference.sample_rate)
            chunks = [c async for c in aio.stream(TEXT, reference.wav, reference.text, params,
                                                  reference_sample_rate=reference.sample_rate)]
            return wav, chunks, rate

    offline_wav, offline_chunks, rate = asyncio.run(run(offline_server.grpc_url, contract.SPARK_TTS))
    streamed_wav, streamed_chunks, _ = asyncio.run(run(streaming_server.grpc_url, contract.SPARK_TTS_DECOUPLED))
    assert rate == contract.SAMPLE_RATE
    assert len(offline_chunks) == 1 and len(streamed_chunks) == 2  # 50 tokens, then the remaining 75
    np.testing.assert_array_equal(offline_chunks[0], offline_wav)
    np.testing.assert_array_equal(join_chunks(streamed_chunks, 1600), streamed_wav)
    # Offline and streaming servers: the same tokens (same length); only chunk-edge vocoding differs.
    assert streamed_wav.shape == offline_wav.shape == (320 * 120,)
    assert np.corrcoef(streamed_wav, offline_wav)[0, 1] > 0.99


def test_async_client_tokenizes_like_the_in_process_codec(
    offline_server: TritonServer, spark_tts, reference: Reference
) -> None:
    codec = spark_tts.audio_tokenizer
    clip = codec.prepare_reference(reference.wav, reference.sample_rate)  # 16 kHz, what tokenize takes

    async def run() -> tuple[np.ndarray, np.ndarray]:
        async with AsyncTritonSparkClient(offline_server.grpc_url) as aio:
            return await aio.tokenize(clip, request_id="tokenize")

    global_tokens, semantic_tokens = asyncio.run(run())
    want_global, want_semantic = codec.tokenize(codec.prepare_reference(clip, contract.SAMPLE_RATE))
    assert global_tokens.dtype == semantic_tokens.dtype == np.int32 and global_tokens.shape == (32,)
    np.testing.assert_array_equal(global_tokens, want_global.numpy().reshape(-1))
    np.testing.assert_array_equal(semantic_tokens, want_semantic.numpy().reshape(-1))


def test_chunk_joiner_releases_only_final_audio_and_matches_join_chunks() -> None:
    from rvc.grpc.chunks import ChunkJoiner

    rng = np.random.default_rng(1)
    chunks = [rng.standard_normal(n).astype(np.float32) for n in (4800, 8000, 8000, 100, 3200)]
    joiner = ChunkJoiner(1600)
    released = [joiner.push(chunk) for chunk in chunks]
    assert released[0].size == 4800 - 1600  # the overlap waits for the next chunk
    released.append(joiner.finish())
    np.testing.assert_array_equal(np.concatenate(released), join_chunks(chunks, 1600))
    np.testing.assert_array_equal(join_chunks(chunks, 1600), crossfade_join_short(chunks, 1600))
    assert joiner.finish().size == 0 and joiner.push(np.zeros(0, np.float32)).size == 0


def crossfade_join_short(chunks: list[np.ndarray], overlap: int) -> np.ndarray:
    """The official client's join, written out (the fade shrinks when a chunk is shorter)."""
    out = chunks[0]
    for piece in chunks[1:]:
        n = min(overlap, len(out), len(piece))
        mixed = piece[:n] * np.linspace(0, 1, n) + out[-n:] * np.linspace(1, 0, n)
        out = np.concatenate([out[:-n], mixed.astype(np.float32), piece[n:]])
    return out


def test_chunk_plan_travels_as_optional_inputs() -> None:
    plan = ChunkPlan(first_tokens=12, steady_tokens=30, overlap_tokens=4)
    inputs = {i.name(): i for i in build_inputs("hi", np.zeros(10), None, TTSParams(chunks=plan))}
    assert {"chunk_first_tokens", "chunk_steady_tokens", "chunk_overlap_tokens"} <= set(inputs)
    assert "chunk_scale" not in inputs and inputs["chunk_first_tokens"].datatype() == "INT32"
    assert ChunkPlan.official() == ChunkPlan(50, 1500, 8.0, 5)
    with pytest.raises(InvalidInput, match="chunk_first_tokens"):
        ChunkPlan(first_tokens=0)
