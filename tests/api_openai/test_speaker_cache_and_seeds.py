"""The speaker-token cache inside Triton, visible in /status and /metrics; a seed's audio is the
same bytes whatever runs beside it (issue 20, item 5), on the package's real stack."""

from __future__ import annotations

import asyncio
import base64
import io
import re
import threading
import time

import httpx
import numpy as np
import soundfile as sf

from tests.api.conftest import espeak_wav, wav_bytes
from tests.stack import Stack

TIMEOUT = 300


def unique_clip(scale: float) -> bytes:
    """A reference clip no other test sends (the cache is keyed by the samples)."""
    samples, rate = sf.read(io.BytesIO(espeak_wav("The cache keeps the tokens of this clip.")), dtype="float32")
    return wav_bytes(samples * scale, rate)


def speech(stack: Stack, clip: bytes, text: str = "Hello there.", **fields: object) -> httpx.Response:
    body = {"model": "tts-1", "voice": "alloy", "input": text, "response_format": "wav",
            "reference_audio": base64.b64encode(clip).decode(), **fields}
    return httpx.post(f"{stack.base_url}/v1/audio/speech", json=body, timeout=TIMEOUT)


def cache_of(stack: Stack) -> dict[str, int]:
    status = httpx.get(f"{stack.base_url}/status", timeout=30).json()
    cache = status["speaker_cache"]
    assert "error" not in cache, cache
    return cache.get("spark_tts", {"entries": 0, "bytes": 0, "hits": 0, "misses": 0, "evictions": 0})


def wait_for_cache(stack: Stack, wanted: dict[str, int], timeout_s: float = 10.0) -> dict[str, int]:
    """The stats are published by a thread in the model: they arrive a moment after the response."""
    deadline = time.monotonic() + timeout_s
    while True:
        now = cache_of(stack)
        if all(now[key] >= value for key, value in wanted.items()):
            return now
        assert time.monotonic() < deadline, f"cache stats {now}, wanted at least {wanted}"
        time.sleep(0.1)


def metric_value(text: str, name: str, model: str) -> float:
    match = re.search(rf'^{re.escape(name)}\{{model="{model}"\}} (\S+)$', text, re.M)
    assert match, f"{name} for {model} missing from /metrics"
    return float(match.group(1))


def test_speaker_cache_miss_then_hit_shows_in_status_and_metrics(stack: Stack) -> None:
    clip = unique_clip(0.8)
    before = cache_of(stack)
    assert speech(stack, clip).status_code == 200
    after_miss = wait_for_cache(stack, {"misses": before["misses"] + 1, "entries": 1})
    assert after_miss["hits"] == before["hits"] and after_miss["bytes"] > 0
    assert speech(stack, clip, text="Hello again.").status_code == 200
    after_hit = wait_for_cache(stack, {"hits": before["hits"] + 1})
    assert after_hit["misses"] == after_miss["misses"] and after_hit["entries"] == after_miss["entries"]
    metrics = httpx.get(f"{stack.base_url}/metrics", timeout=30).text
    assert metric_value(metrics, "voice_tts_speaker_cache_hits_total", "spark_tts") == after_hit["hits"]
    assert metric_value(metrics, "voice_tts_speaker_cache_misses_total", "spark_tts") == after_hit["misses"]
    assert metric_value(metrics, "voice_tts_speaker_cache_entries", "spark_tts") == after_hit["entries"]
    assert metric_value(metrics, "voice_tts_speaker_cache_bytes", "spark_tts") == after_hit["bytes"]
    assert "voice_tts_speaker_cache_evictions_total" in metrics


def test_seeded_speech_is_byte_identical_with_speech_and_rvc_jobs_alongside(stack: Stack) -> None:
    """Two seeded requests run alone, then each twice at once, with /rvc jobs alongside.

    Twins generate the same tokens together, so their sentences reach the vocoder at the same
    moment with equal lengths and meet in one dynamic batch: before the vocoder decoded each
    request alone, that moved samples by one int16 step against the solo run.
    """
    clip = unique_clip(0.7)
    jobs = [("One sentence here. Another one there.", 11), ("Short words, spoken twice.", 12)]
    solo = {}
    for text, seed in jobs:
        response = speech(stack, clip, text=text, seed=seed)
        assert response.status_code == 200, response.text
        solo[(text, seed)] = response.content
    rvc_input = espeak_wav("The worker converts this clip while the seeded requests run.")
    together: list[tuple[tuple[str, int], bytes]] = []
    failures: list[str] = []

    def seeded(text: str, seed: int) -> None:
        response = speech(stack, clip, text=text, seed=seed)
        if response.status_code != 200:
            failures.append(response.text)
        together.append(((text, seed), response.content))

    def convert() -> None:
        response = httpx.post(f"{stack.base_url}/rvc", files={"audio": ("in.wav", rvc_input, "audio/wav")},
                              timeout=TIMEOUT)
        if response.status_code != 200:
            failures.append(response.text)

    threads = [threading.Thread(target=seeded, args=job) for job in jobs for _ in range(2)]
    threads += [threading.Thread(target=convert) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    assert not failures, failures
    assert len(together) == 2 * len(jobs)
    for job, audio in together:
        first = np.frombuffer(solo[job][44:], np.int16)
        again = np.frombuffer(audio[44:], np.int16)
        differing = np.flatnonzero(first != again) if first.shape == again.shape else np.array([-1])
        assert audio == solo[job], f"{job}: {differing.size} samples differ, first at {differing[:1]}"


def test_vocoder_output_on_triton_does_not_depend_on_its_dynamic_batch(stack: Stack) -> None:
    """The mechanism behind the one-step differences, on the real server: equal-length requests sent
    at once meet in one dynamic batch (checked in Triton's statistics); each answer must equal the
    request's solo answer byte for byte."""
    import tritonclient.grpc.aio as grpcaio

    from rvc.grpc import contract

    rng = np.random.default_rng(7)
    requests = [(rng.integers(0, 4096, (1, 32)).astype(np.int32), rng.integers(0, 8192, (1, 173)).astype(np.int32))
                for _ in range(4)]

    def inputs(global_tokens: np.ndarray, semantic_tokens: np.ndarray) -> list:
        tensors = []
        for name, value in ((contract.GLOBAL_TOKENS, global_tokens), (contract.SEMANTIC_TOKENS, semantic_tokens)):
            tensor = grpcaio.InferInput(name, list(value.shape), "INT32")
            tensor.set_data_from_numpy(value)
            tensors.append(tensor)
        return tensors

    async def scenario() -> tuple[list[bytes], list[bytes], int]:
        client = grpcaio.InferenceServerClient(stack.settings.triton_grpc_url)
        try:
            async def vocode(pair: tuple[np.ndarray, np.ndarray]) -> bytes:
                result = await client.infer(contract.VOCODER, inputs(*pair))
                return result.as_numpy(contract.WAVEFORM).tobytes()

            async def counts() -> tuple[int, int]:
                stats = (await client.get_inference_statistics(contract.VOCODER, as_json=True))["model_stats"][0]
                return int(stats.get("inference_count", 0)), int(stats.get("execution_count", 0))

            solo = [await vocode(pair) for pair in requests]
            batched_rounds = 0
            together: list[bytes] = []
            for _ in range(5):  # usually the first round batches; a busy box may need another
                before = await counts()
                together = list(await asyncio.gather(*(vocode(pair) for pair in requests)))
                after = await counts()
                assert together == solo, "a request's vocoder output changed with its batch"
                if after[0] - before[0] > after[1] - before[1]:  # fewer executions than requests: batched
                    batched_rounds += 1
                    break
            return solo, together, batched_rounds
        finally:
            await client.close()

    solo, together, batched_rounds = asyncio.run(scenario())
    assert batched_rounds == 1, "the four requests never met in one dynamic batch"
    assert together == solo
