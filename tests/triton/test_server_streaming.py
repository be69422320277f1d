"""The streaming (decoupled) ``spark_tts_decoupled`` model on the real tritonserver, beside the
offline ``spark_tts``: chunks while generating, the FINAL flag on a data response, equality with the
in-process SparkTTS.stream and the offline tokens (on the official schedule, requested per
request), the official sync client's pattern, errors that end the stream, and cancellation."""

from __future__ import annotations

import asyncio
import queue
import time

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as grpcaio

from rvc.errors import InvalidInput
from rvc.grpc import contract
from rvc.grpc.client import (
    AsyncTritonSparkClient,
    ChunkPlan,
    TritonSparkClient,
    TTSParams,
    build_inputs,
    join_chunks,
)
from rvc.grpc.launcher import TritonServer
from sparktts.llm import GenerationParams
from sparktts.streaming import crossfade_join
from tests.triton.conftest import MAX_NEW_TOKENS, TEXT, Reference, official_inputs, official_stream

OVERLAP = 1600  # 5 tokens x 320 samples
OFFICIAL = ChunkPlan.official()
STREAMING = contract.SPARK_TTS_DECOUPLED


@pytest.fixture(scope="module")
def client(streaming_server: TritonServer):
    with TritonSparkClient(streaming_server.grpc_url, model_name=STREAMING, timeout_s=120) as sync_client:
        yield sync_client


def expected_chunks(spark_tts, reference: Reference, seed: int) -> list[np.ndarray]:
    return list(spark_tts.stream(
        TEXT, reference.wav, reference.text, prompt_sample_rate=reference.sample_rate,
        params=GenerationParams(seed=seed, max_new_tokens=MAX_NEW_TOKENS),
    ))


def test_stream_equals_in_process_sparktts_stream(client: TritonSparkClient, spark_tts, reference: Reference) -> None:
    assert client.model_info().decoupled and client.model_info().overlap_samples == OVERLAP
    chunks = list(client.stream(TEXT, reference.wav, reference.text, TTSParams(seed=21, chunks=OFFICIAL),
                                reference_sample_rate=reference.sample_rate))
    expected = expected_chunks(spark_tts, reference, 21)
    assert [c.size for c in chunks] == [e.size for e in expected] and chunks[0].size == 50 * 320
    for chunk, want in zip(chunks, expected, strict=True):
        np.testing.assert_array_equal(chunk, want)
    wav, rate = client.inference(TEXT, reference.wav, reference.text, TTSParams(seed=21, chunks=OFFICIAL),
                                 reference_sample_rate=reference.sample_rate)
    np.testing.assert_array_equal(wav, crossfade_join(expected, OVERLAP))


def test_concurrent_streams_decoded_together_each_equal_their_solo_stream(
    streaming_server: TritonServer, spark_tts, reference: Reference
) -> None:
    """Two 300-token streams at once: the model's StreamBatcher (stream_batching on by default) steps
    both rows in one decode loop, and each stream is still the in-process SparkTTS.stream of its
    seed (the same ids; a chunk may differ only in float bits if the vocoder batched the two)."""
    seeds = (41, 42)

    async def both() -> list[list[np.ndarray]]:
        async with AsyncTritonSparkClient(streaming_server.grpc_url, model_name=STREAMING) as aio:
            async def one(seed: int) -> list[np.ndarray]:
                return [c async for c in aio.stream(TEXT, reference.wav, reference.text,
                                                    TTSParams(seed=seed, chunks=OFFICIAL),
                                                    reference_sample_rate=reference.sample_rate)]
            return list(await asyncio.gather(*(one(seed) for seed in seeds)))

    for seed, chunks in zip(seeds, asyncio.run(asyncio.wait_for(both(), timeout=300)), strict=True):
        expected = expected_chunks(spark_tts, reference, seed)
        assert [c.size for c in chunks] == [e.size for e in expected]
        for chunk, want in zip(chunks, expected, strict=True):
            np.testing.assert_allclose(chunk, want, rtol=0, atol=1e-5)


def test_streamed_tokens_are_the_offline_tokens(client: TritonSparkClient, spark_tts, reference: Reference) -> None:
    """Each chunk is the vocoding of a slice of the very tokens offline synthesis vocodes."""
    chunks = list(client.stream(TEXT, reference.wav, reference.text, TTSParams(seed=22, chunks=OFFICIAL),
                                reference_sample_rate=reference.sample_rate))
    prompt = spark_tts.build_prompt(TEXT, reference.wav, reference.text, prompt_sample_rate=reference.sample_rate)
    tokens = spark_tts.lm.semantic_ids(spark_tts.lm.generate(prompt.text, GenerationParams(
        seed=22, max_new_tokens=MAX_NEW_TOKENS)))
    start = 0
    for chunk in chunks:
        count = chunk.size // 320
        np.testing.assert_array_equal(chunk, spark_tts.vocode(prompt.global_tokens, tokens[start : start + count]))
        start += count - 5
    assert start + 5 == len(tokens)
    offline = spark_tts.vocode(prompt.global_tokens, tokens)
    joined = join_chunks(chunks, OVERLAP)
    assert joined.shape == offline.shape
    # Only the vocoder's context at chunk edges differs from offline synthesis.
    assert np.corrcoef(joined, offline)[0, 1] > 0.99


def test_final_flag_rides_on_a_data_response_for_asyncio_clients(
    streaming_server: TritonServer, reference: Reference
) -> None:
    """With the request side still open (no half-close), the aio client must still see FINAL."""
    inputs = build_inputs(TEXT, reference.wav, "", TTSParams(seed=3, max_new_tokens=120),
                          reference_sample_rate=reference.sample_rate)

    async def run() -> list[tuple[int, bool]]:
        aio = grpcaio.InferenceServerClient(streaming_server.grpc_url)
        hold_open = asyncio.Event()

        async def requests():
            yield {"model_name": STREAMING, "inputs": inputs, "request_id": "final-flag"}
            await hold_open.wait()

        seen = []
        try:
            async for result, error in aio.stream_infer(inputs_iterator=requests()):
                assert error is None
                final = result.get_response().parameters["triton_final_response"].bool_param
                seen.append((result.as_numpy("waveform").size, final))
                if final:
                    break
        finally:
            hold_open.set()
            await aio.close()
        return seen

    seen = asyncio.run(asyncio.wait_for(run(), timeout=120))
    assert [final for _, final in seen] == [False] * (len(seen) - 1) + [True]
    # the model's default schedule: a 15-token first chunk, then 25-token chunks
    assert [size for size, _ in seen[:2]] == [15 * 320, 25 * 320] and sum(size for size, _ in seen) > 40 * 320


def test_official_sync_streaming_client_pattern_gets_all_audio(
    streaming_server: TritonServer, spark_tts, reference: Reference
) -> None:
    """As client_grpc.py --mode streaming: [1, N] padded clip, enable_empty_final_response=True, and
    the loop stops at the FINAL flag before reading that response's audio."""
    inputs = official_inputs(grpcclient, reference, spark_tts, TEXT, padding_s=10)
    audios = official_stream(streaming_server.grpc_url, inputs, "official")
    assert sum(a.size for a in audios) - OVERLAP * (len(audios) - 1) == 320 * MAX_NEW_TOKENS


def test_stream_errors_end_the_stream_and_the_server_stays_up(
    client: TritonSparkClient, streaming_server: TritonServer, reference: Reference
) -> None:
    with pytest.raises(InvalidInput, match="target_text is empty"):
        list(client.stream("", reference.wav, ""))
    with pytest.raises(InvalidInput, match="reference_sample_rate must be in"):
        list(client.stream(TEXT, reference.wav, "", reference_sample_rate=3))
    sync = grpcclient.InferenceServerClient(streaming_server.grpc_url)
    responses: queue.Queue = queue.Queue()
    sync.start_stream(callback=lambda result, error: responses.put((result, error)))
    only_text = grpcclient.InferInput("target_text", [1, 1], "BYTES")
    only_text.set_data_from_numpy(np.array([[b"hi"]], dtype=object))
    sync.async_stream_infer(STREAMING, [only_text], request_id="missing")
    _, error = responses.get(timeout=60)
    sync.stop_stream()
    sync.close()
    assert error is not None and "reference_wav" in error.message()
    assert client.is_server_ready()
    chunks = list(client.stream(TEXT, reference.wav, "", TTSParams(seed=1, max_new_tokens=20, chunks=OFFICIAL),
                                reference_sample_rate=reference.sample_rate))
    assert [c.size for c in chunks] == [320 * 20]


def test_cancelled_stream_stops_generating(streaming_server: TritonServer, reference: Reference) -> None:
    async def first_chunk_then_leave() -> int:
        async with AsyncTritonSparkClient(streaming_server.grpc_url, model_name=STREAMING) as aio:
            async for chunk in aio.stream(TEXT, reference.wav, "", TTSParams(seed=4, max_new_tokens=3000),
                                          reference_sample_rate=reference.sample_rate, request_id="to-cancel"):
                return chunk.size  # leaving the loop closes (cancels) the stream
        return 0

    assert asyncio.run(first_chunk_then_leave()) == 15 * 320
    deadline = time.monotonic() + 60
    while "[to-cancel] cancelled after 1 chunks" not in streaming_server.log_text(None):
        assert time.monotonic() < deadline, streaming_server.log_text(40)
        time.sleep(0.2)
    with TritonSparkClient(streaming_server.grpc_url) as after:
        assert after.is_server_ready()
