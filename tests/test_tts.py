"""Spark-TTS on Triton, over gRPC: ``python -m tests.test_tts --host H --port 8001 --reference ref.wav``."""

from __future__ import annotations

import sys

import numpy as np
import tritonclient.grpc as grpcclient

import rvc  # noqa: F401  (hides the repo's triton/ folder before torch is imported anywhere)
from rvc.audio import decode_audio
from rvc.grpc import contract
from rvc.grpc.client import TritonSparkClient, TTSParams
from tests.seed_cli import Check, clip_cli

TEXT = "The quick brown fox jumps over the lazy dog."


def tts_checks(url: str, reference: bytes, timeout: float) -> list[Check]:
    wav, _ = decode_audio(reference, target_sample_rate=contract.SAMPLE_RATE)

    def ready() -> str:
        with TritonSparkClient(url, timeout_s=timeout) as client:
            assert client.is_server_ready(), "server or spark_tts model not ready"
            info = client.model_info()
        return f"spark_tts ready ({'streaming' if info.decoupled else 'offline'})"

    def models() -> str:
        client = grpcclient.InferenceServerClient(url)
        try:
            names = [m["name"] for m in client.get_model_repository_index(as_json=True)["models"]]
            for name in (contract.SPARK_TTS, contract.AUDIO_TOKENIZER, contract.VOCODER):
                assert client.is_model_ready(name), f"{name} not ready"
        finally:
            client.close()
        return ", ".join(sorted(names))

    def tokenizer() -> str:
        client = grpcclient.InferenceServerClient(url)
        try:
            audio = grpcclient.InferInput(contract.REFERENCE_WAV, [1, wav.size], "FP32")
            audio.set_data_from_numpy(wav.reshape(1, -1).astype(np.float32))
            length = grpcclient.InferInput(contract.REFERENCE_WAV_LEN, [1, 1], "INT32")
            length.set_data_from_numpy(np.array([[wav.size]], np.int32))
            result = client.infer(contract.AUDIO_TOKENIZER, [audio, length], client_timeout=timeout)
        finally:
            client.close()
        global_tokens = result.as_numpy(contract.GLOBAL_TOKENS)
        semantic_tokens = result.as_numpy(contract.SEMANTIC_TOKENS)
        assert global_tokens.size == 32, global_tokens.shape
        return f"32 global, {semantic_tokens.size} semantic tokens"

    def synthesize() -> str:
        with TritonSparkClient(url, timeout_s=timeout) as client:
            audio, rate = client.inference(TEXT, wav, None, TTSParams(seed=1))
        assert rate == 16000 and audio.size > 0 and np.isfinite(audio).all()
        return f"{audio.size / rate:.2f} s of 16 kHz audio"

    def stream() -> str:
        with TritonSparkClient(url, timeout_s=timeout) as client:
            chunks = list(client.stream(TEXT, wav, None, TTSParams(seed=1)))
        assert chunks and all(chunk.size > 0 for chunk in chunks)
        return f"{len(chunks)} chunk(s)"

    return [Check("server and spark_tts ready", ready), Check("models ready", models),
            Check("audio_tokenizer", tokenizer), Check("spark_tts inference", synthesize),
            Check("spark_tts stream", stream)]


def main(argv: list[str] | None = None) -> int:
    return clip_cli(argv, description="Check Spark-TTS on Triton over gRPC.", port=8001,
                    clip_option="--reference", clip_help="reference clip", address="{host}:{port}",
                    title="Spark-TTS on Triton", checks=tts_checks)


if __name__ == "__main__":
    sys.exit(main())
