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
     ("MAX_UPLOAD_MB", "-1"), ("LOG_LEVEL", "chatty"), ("DEVICE", "tpu")],
)
def test_wrong_value_names_the_variable(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert variable in str(caught.value)
    assert value in str(caught.value)


def test_clashing_ports_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_PORT", "8001")
    with pytest.raises(ConfigError, match="ports must differ"):
        load_settings()
