"""The one-box fleet: docker-compose.voice.yml's `fleet` profile and deploy/nginx/fleet.conf.

The compose services are checked as data (the compose schema test in test_docker.py covers the file). The
nginx configuration is run by the real nginx (Debian's package; NGINX_BINARY names another binary) in front of two
HTTP servers on loopback that stand in for the gateways' wire behaviour (chunked streams, /health): a streamed
response's first event must reach the client while the gateway still holds the rest back; a stream must not
be soaked up by nginx while the client does not read (with nginx's default `proxy_buffering on` it is: nginx
spools it to a temporary file, and the gateway neither feels the client's pace nor learns that it left);
WebSocket upgrade headers must reach the gateway; a gateway that is down must not fail idempotent requests. The real gateways behind nginx are the fleet test's job (issue 19 item 4).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from rvc.settings import load_settings
from tests.conftest import REPO_ROOT

COMPOSE = REPO_ROOT / "docker-compose.voice.yml"
FLEET_CONF = REPO_ROOT / "deploy" / "nginx" / "fleet.conf"
BULK_BYTES = 64 << 20
FLEET_SERVICES = {"fleet-triton", "fleet-postgres", "fleet-gateway-1", "fleet-gateway-2", "fleet-nginx"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def resolved(environment: dict[str, Any]) -> dict[str, str]:
    """Compose's ${NAME:-default} replaced by its default."""
    return {key: re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(value)) for key, value in environment.items()}


def test_fleet_profile_holds_the_topology(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {name for name, service in services.items() if "fleet" in service.get("profiles", [])} == FLEET_SERVICES
    assert "profiles" not in services["voice"]  # the single-box service still starts without a profile
    published = [port for service in services.values() for port in service.get("ports", [])]
    assert len({port.rsplit(":", 1)[0] for port in published}) == len(published) == 2  # voice and nginx only
    assert resolved({"port": services["fleet-nginx"]["ports"][0]})["port"] == "8081:8080"
    postgres = resolved(services["fleet-postgres"]["environment"])
    for name in ("fleet-gateway-1", "fleet-gateway-2"):
        gateway = services[name]
        environment = resolved(gateway["environment"])
        database_url = environment.pop("DATABASE_URL")
        settings = load_settings(**{key.lower(): value for key, value in environment.items()})
        assert settings.triton_host == "fleet-triton" and settings.api_host == "0.0.0.0"
        assert database_url == (f"postgresql+psycopg://{postgres['POSTGRES_USER']}:{postgres['POSTGRES_PASSWORD']}"
                                f"@fleet-postgres:5432/{postgres['POSTGRES_DB']}")
        assert gateway["command"] == ["--no-triton", "--no-download"]
        assert gateway["depends_on"]["fleet-triton"]["condition"] == "service_healthy"
        assert all(volume.endswith(":ro") for volume in gateway["volumes"])
    triton = resolved(services["fleet-triton"]["environment"])
    assert load_settings(**{key.lower(): value for key, value in triton.items() if not key.startswith("HF_")})
    assert "/v2/health/ready" in services["fleet-triton"]["healthcheck"]["test"][-1]
    assert services["fleet-nginx"]["volumes"] == ["./deploy/nginx/fleet.conf:/etc/nginx/conf.d/default.conf:ro"]
    upstreams = re.findall(r"^\s*server\s+([\w.-]+:\d+)", FLEET_CONF.read_text(), flags=re.MULTILINE)
    assert upstreams == ["fleet-gateway-1:8080", "fleet-gateway-2:8080"]


def test_fleet_triton_runs_our_tools(compose: dict[str, Any]) -> None:
    """Each tool in fleet-triton's start command exists, and the download tool accepts its flags."""
    (script,) = compose["services"]["fleet-triton"]["command"]
    calls = re.findall(r"python (/workspace/[\w/.-]+\.py)((?: --?[\w-]+(?: \"?\$\$\w+\"?)?)*)", script)
    tools = {path.removeprefix("/workspace/"): flags.split() for path, flags in calls}
    assert set(tools) == {"tools/download_all_assets.py", "tools/make_demo_assets.py",
                          "triton/scripts/prepare_repository.py"}
    assert all((REPO_ROOT / tool).is_file() for tool in tools)
    spec = importlib.util.spec_from_file_location("download_all_assets", REPO_ROOT / "tools/download_all_assets.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.parse_args(tools["tools/download_all_assets.py"]).if_reachable is True
    assert tools["triton/scripts/prepare_repository.py"][::2] == ["--output", "--model-dir", "--device"]
    assert script.rstrip().endswith("exec python -m rvc.grpc.serve")


# --- nginx, run for real ---------------------------------------------------------------------------------


def nginx_binary() -> str | None:
    return os.environ.get("NGINX_BINARY") or shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")


@dataclass
class Gateway:
    """What one stand-in gateway saw, and the switch that releases the rest of a stream."""

    name: str
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    first_part_read: threading.Event = field(default_factory=threading.Event)
    held_back: list[bool] = field(default_factory=list)  # per stream: did the client get part 1 while we waited?
    bulk_written: threading.Event = field(default_factory=threading.Event)


def serve_gateway(gateway: Gateway) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
            pass

        def _record(self) -> None:
            gateway.requests.append((self.path, {key.lower(): value for key, value in self.headers.items()}))

        def do_GET(self) -> None:
            self._record()
            body = gateway.name.encode()
            self.send_response(200 if self.path == "/health" else 400)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            self._record()
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.path.endswith("?bulk=1"):
                self._bulk()
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part, last in ((b"event: part\ndata: 1\n\n", False), (b"event: end\ndata: 2\n\n", True)):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                self.wfile.flush()
                if not last:
                    gateway.held_back.append(gateway.first_part_read.wait(timeout=10))
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

        def _bulk(self) -> None:
            """BULK_BYTES of stream, far more than socket buffers and nginx's proxy buffers hold."""
            self.send_response(200)
            self.send_header("Content-Length", str(BULK_BYTES))
            self.end_headers()
            chunk = b"x" * (1 << 20)
            for _ in range(BULK_BYTES // len(chunk)):
                self.wfile.write(chunk)
            self.wfile.flush()
            gateway.bulk_written.set()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Nginx:
    port: int
    gateways: list[Gateway]


def start_nginx(binary: str, workdir: Path, upstream_ports: list[int]) -> tuple[subprocess.Popen[bytes], int]:
    """nginx in the foreground on fleet.conf, its upstreams pointed at ``upstream_ports`` on loopback."""
    port = free_port()
    conf = FLEET_CONF.read_text().replace("listen 8080;", f"listen 127.0.0.1:{port};")
    for number, upstream_port in enumerate(upstream_ports, start=1):
        conf = conf.replace(f"fleet-gateway-{number}:8080", f"127.0.0.1:{upstream_port}")
    (workdir / "fleet.conf").write_text(conf)
    temp = "".join(f"{kind}_temp_path {workdir}/{kind};\n" for kind in
                   ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    (workdir / "nginx.conf").write_text(
        f"daemon off;\nmaster_process off;\npid {workdir}/nginx.pid;\nerror_log {workdir}/error.log;\n"
        f"events {{}}\nhttp {{\naccess_log off;\n{temp}include {workdir}/fleet.conf;\n}}\n"
    )
    arguments = [binary, "-p", str(workdir), "-c", str(workdir / "nginx.conf"), "-e", str(workdir / "error.log")]
    subprocess.run([*arguments, "-t"], check=True, capture_output=True, timeout=30)
    process = subprocess.Popen(arguments)
    deadline = time.monotonic() + 20
    while True:  # readiness: the listening socket accepts
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process, port
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((workdir / "error.log").read_text()) from None
            time.sleep(0.05)


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[Nginx]:
    binary = nginx_binary()
    if binary is None:
        pytest.skip("nginx is not installed (apt-get install nginx), or set NGINX_BINARY to its binary")
    gateways = [Gateway("gateway-1"), Gateway("gateway-2")]
    servers = [serve_gateway(gateway) for gateway in gateways]
    process, port = start_nginx(binary, tmp_path, [server.server_address[1] for server in servers])
    try:
        yield Nginx(port, gateways)
    finally:
        process.terminate()
        process.wait(timeout=20)
        for server in servers:
            server.shutdown()
            server.server_close()


def request(port: int, head: str, body: bytes = b"") -> socket.socket:
    connection = socket.create_connection(("127.0.0.1", port), timeout=20)
    connection.sendall(head.encode() + b"\r\n" + body)
    return connection


def read_until(connection: socket.socket, marker: bytes) -> bytes:
    data = b""
    while marker not in data:
        chunk = connection.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


@pytest.mark.parametrize("route", ["/synthesize/sse", "/synthesize/stream"])
def test_streams_pass_through_unbuffered(nginx: Nginx, route: str) -> None:
    head = (f"POST {route} HTTP/1.1\r\nHost: voice\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n"
            "Connection: close\r\n")
    with request(nginx.port, head, b"hello") as connection:
        first = read_until(connection, b"data: 1")
        assert b"data: 1" in first and b"data: 2" not in first
        for gateway in nginx.gateways:
            gateway.first_part_read.set()
        rest = read_until(connection, b"data: 2")
    assert b"200 OK" in first and b"data: 2" in rest
    assert [held for gateway in nginx.gateways for held in gateway.held_back] == [True]


def test_a_stream_moves_at_the_clients_pace(nginx: Nginx) -> None:
    """Unbuffered: while the client reads nothing, the gateway cannot finish writing; then it all arrives."""
    head = "POST /synthesize/stream?bulk=1 HTTP/1.1\r\nHost: voice\r\nContent-Length: 0\r\nConnection: close\r\n"
    with request(nginx.port, head) as connection:
        status = connection.recv(64)
        assert status.startswith(b"HTTP/1.1 200")
        writers = [gateway for gateway in nginx.gateways if gateway.requests]
        assert len(writers) == 1
        assert not writers[0].bulk_written.wait(timeout=3)  # nginx holds the stream back instead of spooling it
        received = len(status)
        while chunk := connection.recv(1 << 20):
            received += len(chunk)
    assert writers[0].bulk_written.wait(timeout=30) and received > BULK_BYTES


def test_websocket_upgrade_headers_reach_the_gateway(nginx: Nginx) -> None:
    head = ("GET /ws HTTP/1.1\r\nHost: voice\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n")
    with request(nginx.port, head) as connection:
        read_until(connection, b"\r\n\r\n")
    with request(nginx.port, "GET /health HTTP/1.1\r\nHost: voice\r\nConnection: close\r\n") as connection:
        read_until(connection, b"gateway-")
    seen = {path: headers for gateway in nginx.gateways for path, headers in gateway.requests}
    assert seen["/ws"]["upgrade"] == "websocket" and seen["/ws"]["connection"].lower() == "upgrade"
    assert "upgrade" not in seen["/health"] and seen["/health"].get("connection", "") != "upgrade"
    assert seen["/health"]["host"] == "voice" and "x-forwarded-for" in seen["/ws"]


def test_requests_go_to_both_gateways(nginx: Nginx) -> None:
    answers = []
    for _ in range(4):
        with request(nginx.port, "GET /health HTTP/1.1\r\nHost: voice\r\nConnection: close\r\n") as connection:
            answers.append(read_until(connection, b"gateway-"))
    assert all(b"200 OK" in answer for answer in answers)
    assert all(gateway.requests for gateway in nginx.gateways)  # least_conn spreads sequential requests


def test_a_gateway_that_is_down_is_skipped(tmp_path: Path) -> None:
    binary = nginx_binary()
    if binary is None:
        pytest.skip("nginx is not installed (apt-get install nginx), or set NGINX_BINARY to its binary")
    gateway = Gateway("gateway-2")
    server = serve_gateway(gateway)
    process, port = start_nginx(binary, tmp_path, [free_port(), server.server_address[1]])  # gateway-1 is down
    try:
        for _ in range(4):
            with request(port, "GET /health HTTP/1.1\r\nHost: voice\r\nConnection: close\r\n") as connection:
                assert b"200 OK" in read_until(connection, b"gateway-2")
        assert len(gateway.requests) == 4
    finally:
        process.terminate()
        process.wait(timeout=20)
        server.shutdown()
        server.server_close()
