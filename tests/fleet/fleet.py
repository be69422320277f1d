"""A fleet on loopback: PostgreSQL, one tritonserver, two gateway processes and nginx in front.

Every part is the real one: Debian's PostgreSQL (``tests.postgres``), the
real tritonserver on demo assets (``tests.stack``), each gateway the real app
under uvicorn in its own process (its RVC workers are its children), so a
test can SIGKILL one, and Debian's nginx with the directives of
``deploy/nginx/fleet.conf`` and this fleet's ports.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import soundfile as sf

from rvc.grpc.launcher import TritonServer
from rvc.processing.voices import REFERENCE_RATE, demo_reference_clip
from rvc.settings import Settings
from tests.conftest import REPO_ROOT, free_port
from tests.postgres import PostgresCluster
from tests.stack import stack_settings, start_triton, write_demo_assets

__all__ = ["Fleet", "Gateway", "clip_wav", "running_fleet", "synthesize"]

NGINX = Path("/usr/sbin/nginx")
FLEET_CONF = REPO_ROOT / "deploy" / "nginx" / "fleet.conf"
TIMEOUT = httpx.Timeout(300.0, connect=10.0)


def clip_wav(seed: int = 0, seconds: float = 3.0) -> bytes:
    """A deterministic speech-like reference clip as a float WAV file."""
    buffer = io.BytesIO()
    sf.write(buffer, demo_reference_clip(seconds, seed=seed), REFERENCE_RATE, format="WAV", subtype="FLOAT")
    return buffer.getvalue()


def synthesize(base_url: str, text: str, seed: int, *, voice: str | None = None, clip: bytes | None = None,
               route: str = "/synthesize") -> httpx.Response:
    data: dict[str, str] = {"text": text, "seed": str(seed)}
    if voice is not None:
        data["voice"] = voice
    files = None if clip is None else {"reference_audio": ("reference.wav", clip, "audio/wav")}
    return httpx.post(f"{base_url}{route}", data=data, files=files, timeout=TIMEOUT)


def wait_until(condition: object, what: str, timeout_s: float, interval_s: float = 0.2) -> float:
    """Poll ``condition()`` until it is true; returns the seconds it took, AssertionError naming ``what``."""
    assert callable(condition)
    start = time.monotonic()
    while True:
        try:
            if condition():
                return time.monotonic() - start
        except httpx.HTTPError:
            pass
        if time.monotonic() - start > timeout_s:
            raise AssertionError(f"{what}: not within {timeout_s:g} s")
        time.sleep(interval_s)


@dataclass
class Gateway:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def health(self) -> dict:
        response = httpx.get(f"{self.url}/health", timeout=10)
        return dict(response.json())

    def in_flight(self) -> float:
        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        match = re.search(r"^voice_api_requests_in_flight (\S+)$", text, re.MULTILINE)
        return float(match.group(1)) if match else 0.0

    def kill(self) -> None:
        """SIGKILL, as a supervisor's timeout or the OOM killer would."""
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""


def _environment(settings: Settings, root: Path, port: int, database_url: str) -> dict[str, str]:
    names = ("spark_model_dir", "weights_dir", "assets_dir", "triton_model_repo", "triton_host",
             "triton_grpc_port", "triton_http_port", "triton_metrics_port", "device")
    environment = {name.upper(): str(getattr(settings, name)) for name in names}
    environment.update(
        STATE_DIR=str(root / "state"), VOICES_DIR=str(root / "voices"), RUN_DIR=str(root / "run"),
        API_HOST="127.0.0.1", API_PORT=str(port), RVC_WORKERS="1", DATABASE_URL=database_url,
    )
    return {**{k: v for k, v in os.environ.items() if not k.startswith(("API_", "TRITON_"))}, **environment}


@contextmanager
def gateway_process(name: str, settings: Settings, root: Path, database_url: str) -> Iterator[Gateway]:
    """``uvicorn rvc.api.app:create_app --factory`` with this fleet's settings in its environment."""
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = root / "gateway.log"
    command = [sys.executable, "-m", "uvicorn", "rvc.api.app:create_app", "--factory", "--host", "127.0.0.1",
               "--port", str(port), "--log-level", "warning"]
    with open(log, "wb") as output:
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=_environment(settings, root, port, database_url),
                                   stdout=output, stderr=subprocess.STDOUT)
    gateway = Gateway(name, port, process, log)
    try:
        def ready() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"{name} exited ({process.returncode}):\n{gateway.log_tail()}")
            health = gateway.health()
            return bool(health["tts_ready"] and health["rvc_ready"] and health["storage_ready"])

        wait_until(ready, f"{name} ready", 300.0, 0.5)
        yield gateway
    finally:
        gateway.stop()


@contextmanager
def nginx_process(root: Path, upstreams: list[int]) -> Iterator[str]:
    """Debian's nginx with fleet.conf's directives, its upstream servers and listen port replaced."""
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = FLEET_CONF.read_text()
    servers = "\n".join(
        f"    server 127.0.0.1:{upstream} max_fails=1 fail_timeout=10s;" for upstream in upstreams
    )
    conf, count = re.subn(r"(    server fleet-gateway-\d+:8080[^\n]*\n)+", servers + "\n", conf)
    assert count == 1, "fleet.conf's upstream block changed; update this test"
    conf, count = re.subn(r"listen 8080;", f"listen 127.0.0.1:{port};", conf)
    assert count == 1
    (root / "fleet.conf").write_text(conf)
    temporary = "\n".join(f"    {kind}_temp_path {root / kind};" for kind in ("client_body", "proxy", "fastcgi",
                                                                               "uwsgi", "scgi"))
    (root / "nginx.conf").write_text(f"""
user root;
worker_processes 2;
pid {root / 'nginx.pid'};
error_log {root / 'error.log'} warn;
daemon off;
events {{ worker_connections 512; }}
http {{
    access_log {root / 'access.log'};
{temporary}
    include {root / 'fleet.conf'};
}}
""")
    log = open(root / "stdout.log", "wb")  # noqa: SIM115 - closed below, after the process
    process = subprocess.Popen([str(NGINX), "-e", str(root / "error.log"), "-p", str(root), "-c",
                                str(root / "nginx.conf")], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        def up() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"nginx exited: {(root / 'error.log').read_text()}")
            return httpx.get(f"{url}/health/live", timeout=5).status_code == 200

        wait_until(up, "nginx answering", 30.0)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@dataclass
class Fleet:
    root: Path
    cluster: PostgresCluster
    database_url: str
    settings: Settings
    triton: TritonServer
    gateways: tuple[Gateway, Gateway]
    nginx_url: str

    def kill_triton(self) -> None:
        """SIGKILL tritonserver alone (its backend stubs are reaped by ``restart_triton``'s stop)."""
        assert self.triton.pid is not None
        os.kill(self.triton.pid, signal.SIGKILL)

    def restart_triton(self) -> TritonServer:
        self.triton.stop()
        self.triton = start_triton(self.settings)
        return self.triton


@contextmanager
def running_fleet(root: Path) -> Iterator[Fleet]:
    if not NGINX.is_file() or shutil.which("runuser") is None:
        raise RuntimeError("the fleet test needs Debian's nginx (/usr/sbin/nginx) and runuser")
    paths = write_demo_assets(root / "assets_root")
    settings = stack_settings(root / "triton", paths, triton_host="127.0.0.1")
    with ExitStack() as stack:
        cluster = PostgresCluster()
        stack.callback(cluster.remove)
        cluster.start()
        database_url = cluster.url(cluster.create_database())
        triton = start_triton(settings)
        fleet_holder: list[Fleet] = []
        stack.callback(lambda: (fleet_holder[0].triton if fleet_holder else triton).stop())
        first = stack.enter_context(gateway_process("gateway-1", settings, root / "gateway-1", database_url))
        second = stack.enter_context(gateway_process("gateway-2", settings, root / "gateway-2", database_url))
        nginx_url = stack.enter_context(nginx_process(root / "nginx", [first.port, second.port]))
        fleet = Fleet(root, cluster, database_url, settings, triton, (first, second), nginx_url)
        fleet_holder.append(fleet)
        yield fleet
