"""Fixtures for the Triton tests: a tiny Spark-TTS folder, the in-process reference model, and one
real tritonserver serving both contracts (the offline ``spark_tts`` and the decoupled
``spark_tts_decoupled``), started once per session.
"""

from __future__ import annotations

import json
import queue
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import tritonclient.grpc as grpcclient

from rvc.errors import TritonStartError
from rvc.grpc import contract
from rvc.grpc.launcher import TritonServer, TritonServerConfig
from rvc.grpc.model_repository import prepare_model_repository
from tests.conftest import free_port

MAX_NEW_TOKENS = 300  # random weights rarely stop: every request generates up to this many tokens
TEXT = "Hello there, how are you?"


@dataclass(frozen=True)
class Reference:
    wav: np.ndarray  # (T,) float32, channel 0 of the fixture clip
    sample_rate: int  # 24 kHz: the server has to resample
    text: str


def official_inputs(protocol, reference: Reference, spark_tts, target_text: str, padding_s: int) -> list:
    """The four tensors exactly as the official ``client_grpc.py`` builds them: the clip at 16 kHz,
    zero-padded to a whole number of ``padding_s`` seconds (plus one), its true length, and both
    texts as str objects in (1, 1) arrays. ``protocol``: tritonclient.grpc or tritonclient.grpc.aio.
    """
    waveform = spark_tts.audio_tokenizer.prepare_reference(reference.wav, reference.sample_rate)
    samples = np.zeros((1, 16000 * padding_s * (waveform.size // (16000 * padding_s) + 1)), np.float32)
    samples[0, : waveform.size] = waveform
    lengths = np.array([[waveform.size]], dtype=np.int32)
    inputs = [
        protocol.InferInput("reference_wav", samples.shape, "FP32"),
        protocol.InferInput("reference_wav_len", lengths.shape, "INT32"),
        protocol.InferInput("reference_text", [1, 1], "BYTES"),
        protocol.InferInput("target_text", [1, 1], "BYTES"),
    ]
    inputs[0].set_data_from_numpy(samples)
    inputs[1].set_data_from_numpy(lengths)
    inputs[2].set_data_from_numpy(np.array([reference.text], dtype=object).reshape((1, 1)))
    inputs[3].set_data_from_numpy(np.array([target_text], dtype=object).reshape((1, 1)))
    return inputs


def official_stream(grpc_url: str, inputs: list, request_id: str) -> list[np.ndarray]:
    """The waveform chunks of ``spark_tts_decoupled`` read as the official ``client_grpc.py --mode
    streaming`` reads them: the sync client's stream with enable_empty_final_response=True, stopping
    at the FINAL flag before reading that response's audio."""
    responses: queue.Queue = queue.Queue()
    sync = grpcclient.InferenceServerClient(grpc_url)
    sync.start_stream(callback=lambda result, error: responses.put((result, error)))
    sync.async_stream_infer(contract.SPARK_TTS_DECOUPLED, inputs, request_id=request_id,
                            enable_empty_final_response=True, outputs=[grpcclient.InferRequestedOutput("waveform")])
    audios = []
    while True:
        result, error = responses.get(timeout=120)
        assert error is None, error
        if result.get_response().parameters["triton_final_response"].bool_param:
            break
        audios.append(result.as_numpy("waveform").reshape(-1))
    sync.stop_stream()
    sync.close()
    return audios


@pytest.fixture(scope="session")
def model_dir(spark_tiny: Path) -> Path:
    """A complete tiny Spark-TTS-0.5B folder (official layout, random weights)."""
    return spark_tiny / "model"


@pytest.fixture(scope="session")
def reference(spark_tiny: Path) -> Reference:
    wav, rate = sf.read(spark_tiny / "inputs" / "reference.wav", dtype="float32", always_2d=True)
    texts = json.loads((spark_tiny / "inputs" / "texts.json").read_text())
    return Reference(np.ascontiguousarray(wav[:, 0]), int(rate), texts["prompt_text"])


@pytest.fixture(scope="session")
def spark_tts(model_dir: Path):
    """The in-process model that the served one must match."""
    from sparktts.inference import SparkTTS

    return SparkTTS.from_pretrained(model_dir)


def _serve(root: Path, model_dir: Path, mode: str) -> Iterator[TritonServer]:
    repository = prepare_model_repository(
        root / "model_repo", model_dir=model_dir, mode=mode, max_new_tokens=MAX_NEW_TOKENS, speaker_cache_size=8
    )
    for attempt in range(3):
        config = TritonServerConfig(
            model_repository=repository, grpc_port=free_port(), http_port=free_port(), metrics_port=free_port(),
            work_dir=root / f"server{attempt}", stop_timeout_s=10,
        )
        server = TritonServer(config)
        try:
            server.start()
        except TritonStartError as exc:  # another process took a port between choosing and binding it
            if "already in use" in str(exc) and attempt < 2:
                continue
            raise
        try:
            yield server
        finally:
            server.stop()
        return


@pytest.fixture(scope="session")
def offline_server(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Iterator[TritonServer]:
    yield from _serve(tmp_path_factory.mktemp("offline"), model_dir, "offline")


@pytest.fixture(scope="session")
def streaming_server(offline_server: TritonServer) -> TritonServer:
    """The same server: one repository holds both models (call ``spark_tts_decoupled`` on it)."""
    return offline_server
