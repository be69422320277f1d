"""Settings: defaults as the seed documents them, and wrong values named at start."""

from __future__ import annotations

from pathlib import Path

import pytest

from rvc.errors import ConfigError
from rvc.settings import load_settings


def test_seed_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RVC_MODEL", "RVC_WORKERS", "API_PORT", "TRITON_MODEL_REPO"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.rvc_model == "SilverWolf_e300_s6600.pth"
    assert settings.voice_name == "SilverWolf_e300_s6600"
    assert settings.rvc_workers == 2
    assert settings.api_port == 8080
    assert settings.triton_grpc_url == "127.0.0.1:8001"
    assert settings.hubert_path.parts[-2:] == ("hubert", "hubert_base.pt")


def test_environment_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RVC_WORKERS", "4")
    monkeypatch.setenv("TRITON_MODEL_REPO", str(tmp_path))
    monkeypatch.setenv("WEIGHTS_DIR", str(tmp_path / "w"))
    settings = load_settings()
    assert settings.rvc_workers == 4
    assert settings.triton_model_repo == tmp_path
    assert settings.weights_dir == tmp_path / "w"


@pytest.mark.parametrize(
    ("variable", "value"),
    [("RVC_WORKERS", "zero"), ("RVC_WORKERS", "0"), ("API_PORT", "70000"), ("RVC_MODEL", "../etc/passwd"),
     ("MAX_UPLOAD_MB", "-1"), ("LOG_LEVEL", "chatty"), ("DEVICE", "tpu"), ("TRITON_STARTUP_TIMEOUT_S", "0"),
     ("LLM_BACKEND", "vllm"), ("RVC_PRECISION", "int8"), ("IDLE_UNLOAD_S", "-5"), ("IDLE_UNLOAD_S", "soon")],
)
def test_wrong_value_names_the_variable(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert variable in str(caught.value)
    assert value in str(caught.value)


def test_rvc_precision_defaults_to_auto_and_takes_each_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from typing import get_args

    from rvc.device import RVC_PRECISION_SETTINGS
    from rvc.settings import Settings

    monkeypatch.delenv("RVC_PRECISION", raising=False)
    assert load_settings().rvc_precision == "auto"
    assert get_args(Settings.model_fields["rvc_precision"].annotation) == RVC_PRECISION_SETTINGS
    for value in RVC_PRECISION_SETTINGS:
        monkeypatch.setenv("RVC_PRECISION", value)
        assert load_settings().rvc_precision == value


def test_clashing_ports_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_PORT", "8001")
    with pytest.raises(ConfigError, match="ports must differ"):
        load_settings()


# --- GPU-related settings ---------------------------------------------------------------------------


def test_gpu_settings_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TRITON_STARTUP_TIMEOUT_S", "LLM_BACKEND", "TRT_ENGINE_DIR", "DEVICE"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.triton_startup_timeout_s == 600.0
    assert settings.llm_backend == "auto" and settings.trt_engine_dir is None
    assert settings.device == "auto"


def test_llm_backend_auto_is_onnxruntime_on_the_cpu_and_torch_on_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    monkeypatch.delenv("LLM_BACKEND", raising=False)
    settings = load_settings()
    assert importlib.util.find_spec("onnxruntime_genai") is not None  # the project installs it
    assert settings.for_device("cpu").llm_backend == "onnxruntime"
    assert settings.for_device("cuda").llm_backend == "python"
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "onnxruntime_genai" else real_find_spec(name, *args))
    assert settings.for_device("cpu").llm_backend == "python"  # an install without the engine
    monkeypatch.setenv("LLM_BACKEND", "python")
    assert load_settings().for_device("cpu").llm_backend == "python"  # what the operator set wins


def test_rvc_workers_default_is_one_on_cuda_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RVC_WORKERS", raising=False)
    settings = load_settings()
    assert settings.rvc_workers == 2 and settings.for_device("cpu").rvc_workers == 2
    on_gpu = settings.for_device("cuda")
    assert on_gpu.rvc_workers == 1 and on_gpu.device == "cuda"
    monkeypatch.setenv("RVC_WORKERS", "3")
    assert load_settings().for_device("cuda").rvc_workers == 3  # what the operator set wins


@pytest.mark.parametrize("value", ["auto", "AUTO", ""])
def test_rvc_workers_auto_counts_as_unset(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("RVC_WORKERS", value)
    settings = load_settings()
    assert settings.rvc_workers == 2 and settings.for_device("cuda").rvc_workers == 1


def test_for_device_takes_only_a_resolved_device() -> None:
    with pytest.raises(ValueError, match="once resolved"):
        load_settings().for_device("auto")  # type: ignore[arg-type] - the wrong value is the point


def test_tensorrtllm_needs_an_engine_dir_and_a_gpu(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LLM_BACKEND", "tensorrtllm")
    monkeypatch.delenv("TRT_ENGINE_DIR", raising=False)
    with pytest.raises(ConfigError, match="LLM_BACKEND=tensorrtllm needs TRT_ENGINE_DIR"):
        load_settings()
    monkeypatch.setenv("TRT_ENGINE_DIR", str(tmp_path))
    monkeypatch.setenv("DEVICE", "cpu")
    with pytest.raises(ConfigError, match="cannot run with DEVICE=cpu"):
        load_settings()
    monkeypatch.setenv("DEVICE", "cuda")
    settings = load_settings()
    assert settings.llm_backend == "tensorrtllm" and settings.trt_engine_dir == tmp_path


def test_llm_restrict_vocab_is_off_by_default_and_refused_with_tensorrtllm(monkeypatch: pytest.MonkeyPatch,
                                                                            tmp_path: Path) -> None:
    assert load_settings().llm_restrict_vocab is False
    monkeypatch.setenv("LLM_RESTRICT_VOCAB", "true")
    assert load_settings().llm_restrict_vocab is True
    monkeypatch.setenv("LLM_BACKEND", "tensorrtllm")
    monkeypatch.setenv("TRT_ENGINE_DIR", str(tmp_path))
    monkeypatch.setenv("DEVICE", "cuda")
    with pytest.raises(ConfigError, match="LLM_RESTRICT_VOCAB needs LLM_BACKEND python or onnxruntime"):
        load_settings()


def test_idle_unload_is_off_by_default_and_turns_on_explicit_model_control(monkeypatch: pytest.MonkeyPatch,
                                                                            tmp_path: Path) -> None:
    from rvc.launch import triton_config

    monkeypatch.delenv("IDLE_UNLOAD_S", raising=False)
    assert load_settings().idle_unload_s == 0
    assert triton_config(load_settings(), tmp_path).explicit_model_control is False
    monkeypatch.setenv("IDLE_UNLOAD_S", "300")
    config = triton_config(load_settings(), tmp_path)
    assert config.explicit_model_control is True
    from rvc.grpc.launcher import TritonServer

    command = TritonServer(config).command(None, cpu_only=True)
    assert "--model-control-mode=explicit" in command and "--load-model=*" in command


def test_triton_startup_timeout_has_one_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The service, `python -m rvc.grpc.serve` (run.sh stage 3) and a bare launcher config wait the same
    time for tritonserver, and TRITON_STARTUP_TIMEOUT_S moves all of them."""
    from rvc.grpc.launcher import TritonServerConfig
    from rvc.grpc.serve import build_config
    from rvc.settings import PROJECT_ROOT, TRITON_STARTUP_TIMEOUT_DEFAULT_S

    monkeypatch.delenv("TRITON_STARTUP_TIMEOUT_S", raising=False)
    assert TRITON_STARTUP_TIMEOUT_DEFAULT_S == 600.0
    assert load_settings().triton_startup_timeout_s == TRITON_STARTUP_TIMEOUT_DEFAULT_S
    assert TritonServerConfig(model_repository=tmp_path).startup_timeout_s == TRITON_STARTUP_TIMEOUT_DEFAULT_S
    assert build_config(["--model-repository", str(tmp_path)]).startup_timeout_s == TRITON_STARTUP_TIMEOUT_DEFAULT_S
    monkeypatch.setenv("TRITON_STARTUP_TIMEOUT_S", "900")
    assert build_config(["--model-repository", str(tmp_path)]).startup_timeout_s == 900.0
    # run.sh stage 3 leaves the value to the settings instead of writing a default of its own
    assert "--startup-timeout" not in (PROJECT_ROOT / "triton" / "run.sh").read_text()
