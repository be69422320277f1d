"""``llm_backend=onnxruntime`` on a real tritonserver: the repository writer exports the tiny LLM
(int8, cached beside the repository), and the offline ``spark_tts`` and the streaming
``spark_tts_decoupled`` both decode through ONNX Runtime (``sparktts.onnx_decoder``) with our sampling,
here with ``llm_restrict_vocab`` (the grammar head), so one seed gives both the same tokens."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from rvc.grpc import contract
from rvc.grpc.client import ChunkPlan, TritonSparkClient, TTSParams, join_chunks
from rvc.grpc.launcher import TritonServer, TritonServerConfig
from rvc.grpc.model_repository import prepare_model_repository
from tests.conftest import free_port
from tests.triton.conftest import TEXT, Reference

pytest.importorskip("onnxruntime_genai")

TOKENS = 120  # random weights rarely stop: each request generates this many


@pytest.fixture(scope="module")
def onnx_server(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Iterator[TritonServer]:
    root = tmp_path_factory.mktemp("onnx_backend")
    # restricted: the grammar head's path through the stubs; the full head serves in every launcher and API
    # stack test (the CPU default)
    repository = prepare_model_repository(root / "model_repo", model_dir=model_dir, llm_backend="onnxruntime",
                                          max_new_tokens=TOKENS, llm_restrict_vocab=True)
    [export] = [path for path in (root / "model_repo.llm_cache").iterdir() if not path.name.startswith(".")]  # not the lock file
    assert export.name.startswith("int8-") and (export / "genai_config.json").is_file()
    for model in (contract.SPARK_TTS, contract.SPARK_TTS_DECOUPLED):
        assert f'string_value: "{export}"' in (repository / model / "config.pbtxt").read_text()
    server = TritonServer(TritonServerConfig(
        model_repository=repository, grpc_port=free_port(), http_port=free_port(), metrics_port=free_port(),
        work_dir=root / "server", stop_timeout_s=10,
    ))
    server.start()
    try:
        log = server.log_path.read_text(encoding="utf-8", errors="replace")
        assert log.count("llm onnxruntime") == 2 and log.count("restrict_vocab on") == 2, log[-4000:]
        yield server
    finally:
        server.stop()


def test_offline_and_streaming_requests_decode_the_same_tokens(onnx_server: TritonServer, reference: Reference) -> None:
    def request(model: str, chunks: ChunkPlan | None) -> list[np.ndarray]:
        with TritonSparkClient(onnx_server.grpc_url, model_name=model) as client:
            return list(client.stream(TEXT, reference.wav, reference.text, TTSParams(seed=21, chunks=chunks),
                                      reference_sample_rate=reference.sample_rate))

    [offline] = request(contract.SPARK_TTS, None)
    assert offline.size == 320 * TOKENS and np.isfinite(offline).all() and np.abs(offline).max() > 0
    # one chunk holding every token: the vocoder gets exactly the offline request's semantic tokens
    whole = ChunkPlan(first_tokens=TOKENS, steady_tokens=TOKENS, scale=1.0, overlap_tokens=0)
    [streamed] = request(contract.SPARK_TTS_DECOUPLED, whole)
    np.testing.assert_array_equal(streamed, offline)
    # the model's own schedule: several chunks, the same number of tokens
    chunks = request(contract.SPARK_TTS_DECOUPLED, None)
    assert len(chunks) > 1
    assert join_chunks(chunks, 5 * 320).size == offline.size
