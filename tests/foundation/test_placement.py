"""rvc.launch.resolve_placement: the service path decides the device once, on this machine (no driver,
torch 2.13.0+cpu), and passes it to Triton and the workers through the settings it returns."""

from __future__ import annotations

from pathlib import Path

import pytest

from rvc.device import driver_present
from rvc.errors import ConfigError
from rvc.launch import resolve_placement
from rvc.server.config import PoolConfig
from rvc.settings import load_settings

pytestmark = pytest.mark.skipif(driver_present(), reason="this test describes a machine without an NVIDIA driver")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DEVICE", "RVC_WORKERS", "RVC_PRECISION", "LLM_BACKEND", "TRT_ENGINE_DIR", "LLM_DTYPE"):
        monkeypatch.delenv(name, raising=False)


def test_auto_resolves_to_cpu_here_and_the_pool_gets_that_device() -> None:
    settings = resolve_placement(load_settings())
    assert settings.device == "cpu" and settings.rvc_workers == 2
    assert PoolConfig.from_settings(settings).device == "cpu"  # never "auto" again in a worker


def test_rvc_precision_auto_passes_the_start_and_reaches_the_pool() -> None:
    settings = resolve_placement(load_settings())  # RVC_PRECISION unset: auto
    assert settings.rvc_precision == "auto" and PoolConfig.from_settings(settings).precision == "auto"


def test_cuda_requested_with_the_cpu_wheel_fails_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEVICE", "cuda")
    with pytest.raises(ConfigError, match="CPU-only build"):
        resolve_placement(load_settings())


def test_fp16_on_the_cpu_is_refused_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RVC_PRECISION", "fp16")
    with pytest.raises(ConfigError, match="RVC_PRECISION=fp16 needs a CUDA device"):
        resolve_placement(load_settings())


def test_llm_dtype_auto_is_float32_here_and_float16_is_refused_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    from rvc.launch import place

    assert load_settings().llm_dtype == "auto"
    assert place(load_settings()).llm_dtype == "float32"  # what the repository's spark_tts gets
    monkeypatch.setenv("LLM_DTYPE", "float16")
    with pytest.raises(ConfigError) as error:
        resolve_placement(load_settings())
    assert error.value.field == "LLM_DTYPE" and "LLM_DTYPE=float16 needs a CUDA device" in error.value.message
    monkeypatch.setenv("LLM_DTYPE", "int8")
    with pytest.raises(ConfigError, match="LLM_DTYPE"):
        load_settings()


def test_tensorrtllm_without_a_gpu_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LLM_BACKEND", "tensorrtllm")
    monkeypatch.setenv("TRT_ENGINE_DIR", str(tmp_path))
    with pytest.raises(ConfigError, match="tensorrtllm needs a GPU"):
        resolve_placement(load_settings())


def test_repository_keeps_the_codec_float32_and_sizes_the_kv_pool(tmp_path: Path) -> None:
    from rvc.grpc import contract
    from rvc.grpc.model_repository import TRTLLM_PROMPT_TOKENS, RepositoryConfig

    config = RepositoryConfig(model_dir=tmp_path, device="cuda", dtype="float16", llm_backend="tensorrtllm",
                              trtllm_engine_dir=tmp_path, max_batch_size=4, max_new_tokens=3000)
    values = config.template_values()
    assert values[contract.AUDIO_TOKENIZER]["dtype"] == "float32"
    assert values[contract.VOCODER]["dtype"] == "float32"
    assert values[contract.SPARK_TTS]["dtype"] == "float16"  # only the LLM takes the half type
    llm = values[contract.TENSORRT_LLM]
    assert llm["max_tokens_in_paged_kv_cache"] == 4 * (TRTLLM_PROMPT_TOKENS + 3000)
    assert llm["max_attention_window_size"] == TRTLLM_PROMPT_TOKENS + 3000
