"""The offline repository on the real tritonserver: every model answers, the served voice equals
the in-process SparkTTS, concurrent requests, errors, the speaker cache, and the official clients'
request shapes (gRPC and HTTP JSON)."""

from __future__ import annotations

import asyncio

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as grpcaio

from rvc.errors import InvalidInput
from rvc.grpc import contract
from rvc.grpc.client import AsyncTritonSparkClient, TritonSparkClient, TTSParams, map_error
from rvc.grpc.launcher import TritonServer
from sparktts import serving
from sparktts.llm import GenerationParams
from tests.triton.conftest import MAX_NEW_TOKENS, TEXT, Reference, official_inputs


@pytest.fixture(scope="module")
def client(offline_server: TritonServer):
    with TritonSparkClient(offline_server.grpc_url, timeout_s=120) as sync_client:
        yield sync_client


def tensor(name: str, value: np.ndarray, datatype: str) -> grpcclient.InferInput:
    infer_input = grpcclient.InferInput(name, list(value.shape), datatype)
    infer_input.set_data_from_numpy(value)
    return infer_input


def inference_count(server: TritonServer, model: str) -> tuple[int, int]:
    """(requests inferred, execute() calls) of ``model`` so far."""
    stats_client = grpcclient.InferenceServerClient(server.grpc_url)
    try:
        stats = stats_client.get_inference_statistics(model, as_json=True)["model_stats"][0]
    finally:
        stats_client.close()
    return int(stats.get("inference_count", 0)), int(stats.get("execution_count", 0))


def test_audio_tokenizer_and_vocoder_answer_like_the_in_process_codec(
    offline_server: TritonServer, spark_tts, reference: Reference
) -> None:
    raw = grpcclient.InferenceServerClient(offline_server.grpc_url)
    wav = reference.wav.reshape(1, -1)
    result = raw.infer(contract.AUDIO_TOKENIZER, [
        tensor("reference_wav", wav, "FP32"),
        tensor("reference_wav_len", np.array([[wav.shape[1]]], np.int32), "INT32"),
        tensor("reference_sample_rate", np.array([[reference.sample_rate]], np.int32), "INT32"),
    ])
    global_tokens, semantic_tokens = result.as_numpy("global_tokens"), result.as_numpy("semantic_tokens")
    prepared = spark_tts.audio_tokenizer.prepare_reference(reference.wav, reference.sample_rate)
    want_global, want_semantic = spark_tts.audio_tokenizer.tokenize(prepared)
    assert global_tokens.dtype == np.int32 and global_tokens.shape == (1, 32)
    np.testing.assert_array_equal(global_tokens, want_global.numpy())
    np.testing.assert_array_equal(semantic_tokens, want_semantic.numpy())

    result = raw.infer(contract.VOCODER, [
        tensor("global_tokens", global_tokens, "INT32"), tensor("semantic_tokens", semantic_tokens[:, :40], "INT32"),
    ])
    waveform = result.as_numpy("waveform")
    assert waveform.dtype == np.float32 and waveform.shape == (1, 320 * 40)
    expected = spark_tts.audio_tokenizer.detokenize(want_global, want_semantic[:, :40])
    np.testing.assert_array_equal(waveform, expected)
    raw.close()


def test_served_voice_equals_in_process_sparktts(client: TritonSparkClient, spark_tts, reference: Reference) -> None:
    assert client.is_server_ready() and client.model_info().decoupled is False
    wav, rate = client.inference(
        TEXT, reference.wav, reference.text, TTSParams(seed=11), reference_sample_rate=reference.sample_rate
    )
    expected = spark_tts.inference(
        TEXT, reference.wav, reference.text, prompt_sample_rate=reference.sample_rate,
        params=GenerationParams(seed=11, max_new_tokens=MAX_NEW_TOKENS),
    )
    assert rate == 16000 and wav.dtype == np.float32
    np.testing.assert_array_equal(wav, expected)  # bit-identical: same code, same weights, one thread
    chunks = list(client.stream(TEXT, reference.wav, reference.text, TTSParams(seed=11),
                                reference_sample_rate=reference.sample_rate))
    assert len(chunks) == 1
    np.testing.assert_array_equal(chunks[0], expected)


def test_eight_concurrent_requests_each_get_their_own_audio(offline_server: TritonServer, reference: Reference) -> None:
    before = inference_count(offline_server, contract.SPARK_TTS)

    async def run() -> list[np.ndarray]:
        async with AsyncTritonSparkClient(offline_server.grpc_url) as aio:
            return await asyncio.gather(*(
                aio.inference(f"{TEXT} number {i}", reference.wav, None,
                              TTSParams(seed=100 + i, max_new_tokens=60 + 10 * i),
                              reference_sample_rate=reference.sample_rate)
                for i in range(8)
            ))

    results = asyncio.run(run())
    for i, (wav, rate) in enumerate(results):
        assert rate == 16000 and wav.size % 320 == 0 and 0 < wav.size <= 320 * (60 + 10 * i)
        assert np.isfinite(wav).all()
    assert len({wav.tobytes() for wav, _ in results}) == 8
    after = inference_count(offline_server, contract.SPARK_TTS)
    inferences, executions = after[0] - before[0], after[1] - before[1]
    assert inferences == 8 and executions < 8  # dynamic batching merged queued requests


def test_bad_requests_get_clear_errors_and_the_server_stays_up(
    client: TritonSparkClient, offline_server: TritonServer, reference: Reference
) -> None:
    with pytest.raises(InvalidInput, match="target_text is empty"):
        client.inference("   ", reference.wav, "")
    raw = grpcclient.InferenceServerClient(offline_server.grpc_url)
    wav = tensor("reference_wav", reference.wav.reshape(1, -1), "FP32")
    length = tensor("reference_wav_len", np.array([[reference.wav.size]], np.int32), "INT32")
    text = tensor("target_text", np.array([[TEXT.encode()]], dtype=object), "BYTES")

    def call(inputs: list[grpcclient.InferInput]) -> None:
        try:
            raw.infer(contract.SPARK_TTS, inputs)
        except grpcclient.InferenceServerException as exc:
            raise map_error(exc, offline_server.grpc_url) from exc

    with pytest.raises(InvalidInput, match="target_text"):  # a required input is missing: Triton's own check
        call([wav, length])
    with pytest.raises(InvalidInput, match="reference_wav_len must be in"):
        call([wav, tensor("reference_wav_len", np.array([[reference.wav.size + 5]], np.int32), "INT32"), text])
    with pytest.raises(InvalidInput, match="top_p"):
        call([wav, length, text, tensor("top_p", np.array([[1.5]], np.float32), "FP32")])
    raw.close()
    assert client.is_server_ready()
    audio, _ = client.inference(TEXT, reference.wav, "", TTSParams(seed=1, max_new_tokens=20),
                                reference_sample_rate=reference.sample_rate)
    assert audio.shape == (320 * 20,)


def test_a_repeated_reference_skips_the_tokenizer(client: TritonSparkClient, offline_server: TritonServer,
                                                  reference: Reference) -> None:
    clip = reference.wav[: reference.sample_rate * 2] * 0.5  # a clip no other test sends
    params = TTSParams(seed=2, max_new_tokens=20)
    before, _ = inference_count(offline_server, contract.AUDIO_TOKENIZER)
    first, _ = client.inference(TEXT, clip, "", params, reference_sample_rate=reference.sample_rate)
    after_first, _ = inference_count(offline_server, contract.AUDIO_TOKENIZER)
    second, _ = client.inference(TEXT, clip, "", params, reference_sample_rate=reference.sample_rate)
    after_second, _ = inference_count(offline_server, contract.AUDIO_TOKENIZER)
    assert (after_first - before, after_second - after_first) == (1, 0)  # the hit never reached the tokenizer
    np.testing.assert_array_equal(first, second)
    assert "speaker cache hit" in offline_server.log_text(None)
    client.inference(TEXT, clip, "", params, reference_sample_rate=22050)  # same samples, other rate: a miss
    assert inference_count(offline_server, contract.AUDIO_TOKENIZER)[0] - after_second == 1


def test_official_grpc_client_request_shape(offline_server: TritonServer, reference: Reference, spark_tts) -> None:
    """As client_grpc.py (offline): aio infer, 16 kHz clip zero-padded to whole seconds, str texts."""
    inputs = official_inputs(grpcaio, reference, spark_tts, "Official shape.", padding_s=1)

    async def run() -> np.ndarray:
        aio = grpcaio.InferenceServerClient(offline_server.grpc_url)
        try:
            response = await aio.infer("spark_tts", inputs, request_id="100000000",
                                       outputs=[grpcaio.InferRequestedOutput("waveform")])
        finally:
            await aio.close()
        return response.as_numpy("waveform").reshape(-1)

    audio = asyncio.run(run())
    assert audio.size > 0 and audio.size % 320 == 0 and np.isfinite(audio).all()


def test_official_http_client_json_body(offline_server: TritonServer, reference: Reference, spark_tts) -> None:
    """As client_http.py: POST /v2/models/spark_tts/infer?request_id=0 with nested-list JSON."""
    waveform = spark_tts.audio_tokenizer.prepare_reference(reference.wav, reference.sample_rate)[:16000]
    samples = waveform.reshape(1, -1).astype(np.float32)
    body = {"inputs": [
        {"name": "reference_wav", "shape": list(samples.shape), "datatype": "FP32", "data": samples.tolist()},
        {"name": "reference_wav_len", "shape": [1, 1], "datatype": "INT32", "data": [[samples.shape[1]]]},
        {"name": "reference_text", "shape": [1, 1], "datatype": "BYTES", "data": [reference.text]},
        {"name": "target_text", "shape": [1, 1], "datatype": "BYTES", "data": ["Official HTTP shape."]},
    ]}
    response = httpx.post(f"{offline_server.http_url}/v2/models/spark_tts/infer", params={"request_id": "0"},
                          json=body, timeout=120)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["outputs"][0]["name"] == "waveform" and result["outputs"][0]["datatype"] == "FP32"
    audio = np.array(result["outputs"][0]["data"], dtype=np.float32)
    assert audio.size == int(np.prod(result["outputs"][0]["shape"])) > 0 and audio.size % 320 == 0
    bad = httpx.post(f"{offline_server.http_url}/v2/models/spark_tts/infer",
                     json={"inputs": [*body["inputs"][:3], {**body["inputs"][3], "data": [""]}]}, timeout=60)
    assert bad.status_code == 400 and serving.INVALID_INPUT_PREFIX + "target_text is empty" in bad.json()["error"]
