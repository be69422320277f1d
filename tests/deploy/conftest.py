"""Fixtures for the deployment tests: asset folders in tmp, a fake hub, tool runners."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from rvc.provision.catalog import RVC_BASE_REPO, SPARK_REPO
from rvc.settings import Settings, load_settings
from tests.conftest import REPO_ROOT
from tests.deploy.fakehub import FakeHub, serve_fake_hub

TOOLS_DIR = REPO_ROOT / "tools"
VOICE_REPO = "someone/voices"
BIG_FILE = "LLM/model.safetensors"  # the file the resume tests cut short (2.5 MiB: several 1 MiB chunks)

RunTool = Callable[..., subprocess.CompletedProcess[str]]


def payload(name: str, size: int) -> bytes:
    """Deterministic pseudo-random bytes for one fake file."""
    return random.Random(name).randbytes(size)


def spark_tree() -> dict[str, tuple[bytes, bool]]:
    """A small stand-in of SparkAudio/Spark-TTS-0.5B: path -> (content, stored in LFS)."""
    small = ["config.yaml", "README.md", "BiCodec/config.yaml", "LLM/config.json", "LLM/tokenizer.json",
             "LLM/tokenizer_config.json", "LLM/vocab.json", "LLM/merges.txt", "LLM/added_tokens.json",
             "LLM/special_tokens_map.json", "wav2vec2-large-xlsr-53/config.json",
             "wav2vec2-large-xlsr-53/preprocessor_config.json", ".gitattributes", "src/figures/logo.png"]
    tree = {path: (payload(path, 200 + len(path)), False) for path in small}
    tree["BiCodec/model.safetensors"] = (payload("bicodec", 300_000), True)
    tree[BIG_FILE] = (payload("llm", 2_500_000), True)
    tree["wav2vec2-large-xlsr-53/pytorch_model.bin"] = (payload("w2v", 150_000), True)
    return tree


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    """The fake hub with Spark-TTS-0.5B, the RVC base models and one voice repository."""
    fake = FakeHub()
    for path, (content, lfs) in spark_tree().items():
        fake.add(SPARK_REPO, path, content, lfs=lfs)
    fake.add(RVC_BASE_REPO, "hubert_base.pt", payload("hubert", 120_000))
    fake.add(RVC_BASE_REPO, "rmvpe.pt", payload("rmvpe", 90_000))
    for name in ("config.json", "preprocessor_config.json", "pytorch_model.bin"):  # the WebUI main's layout
        fake.add(RVC_BASE_REPO, f"hubert_base/{name}", payload(name, 30_000))
    fake.add(VOICE_REPO, "Wolf/Wolf_e300.pth", payload("voice", 50_000))
    fake.add(VOICE_REPO, "Wolf/added_IVF1_Flat_nprobe_1_Wolf_v2.index", payload("index", 40_000))
    with serve_fake_hub(fake) as served:
        yield served


@pytest.fixture
def asset_dirs(tmp_path: Path) -> dict[str, str]:
    """Environment variables that put every asset folder under tmp."""
    return asset_env_under(tmp_path / "root")


def asset_env_under(root: Path) -> dict[str, str]:
    return {
        "WEIGHTS_DIR": str(root / "weights"),
        "ASSETS_DIR": str(root / "assets"),
        "SPARK_MODEL_DIR": str(root / "pretrained_models" / "Spark-TTS-0.5B"),
        "TRITON_MODEL_REPO": str(root / "model_repo"),
        "RUN_DIR": str(root / "run"),
        "VOICES_DIR": str(root / "voices"),
    }


@pytest.fixture
def settings(asset_dirs: dict[str, str]) -> Settings:
    return settings_for(asset_dirs)


def settings_for(asset_env: dict[str, str]) -> Settings:
    return load_settings(**{key.lower(): value for key, value in asset_env.items()})


@pytest.fixture(scope="session")
def demo_asset_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real demo assets (the generators' output), made once per session under ``<root>/``."""
    from rvc.provision.demo import make_demo_assets

    root = tmp_path_factory.mktemp("demo-assets")
    make_demo_assets(settings_for(asset_env_under(root)))
    return root


@pytest.fixture
def demo_assets(demo_asset_root: Path, asset_dirs: dict[str, str]) -> None:
    """A private copy of the demo assets in this test's asset folders."""
    for key in ("WEIGHTS_DIR", "ASSETS_DIR", "SPARK_MODEL_DIR"):
        source = Path(asset_env_under(demo_asset_root)[key])
        shutil.copytree(source, asset_dirs[key], dirs_exist_ok=True)


@pytest.fixture
def run_tool(tmp_path: Path, asset_dirs: dict[str, str]) -> RunTool:
    """Run ``tools/<name>.py`` from a neutral cwd with the tmp asset folders; extra env by keyword."""
    neutral = tmp_path / "cwd"
    neutral.mkdir(exist_ok=True)

    def run(name: str, *args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
        full_env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "HF_TOKEN")}
        full_env.update(asset_dirs)
        full_env.update(env)
        return subprocess.run(
            [sys.executable, str(TOOLS_DIR / f"{name}.py"), *args],
            cwd=neutral,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    return run


@pytest.fixture
def health_server() -> Iterator[tuple[int, dict[str, Any]]]:
    """An HTTP server answering /health with the body and status that the test sets (the gateway's shape),
    on which the Docker healthchecks and the Kubernetes probes run for real."""
    state: dict[str, Any] = {"status": 200, "body": b""}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
            pass

        def do_GET(self) -> None:
            body = state["body"] if self.path == "/health" else b""
            self.send_response(state["status"] if self.path == "/health" else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], state
    finally:
        server.shutdown()
        server.server_close()
