"""Can the parts be reached? ``python -m tests.test_connection --host H [--api-port 8080 --grpc-port 8001]``."""

from __future__ import annotations

import socket
import sys

import httpx
import tritonclient.grpc as grpcclient

from tests.seed_cli import Check, base_parser, print_table, run_checks


def connection_checks(host: str, api_port: int, grpc_port: int, timeout: float) -> list[Check]:
    def tcp(port: int) -> str:
        with socket.create_connection((host, port), timeout=min(timeout, 5.0)):
            return f"{host}:{port} accepts connections"

    def api_health() -> str:
        body = httpx.get(f"http://{host}:{api_port}/health", timeout=timeout).json()
        return f"status {body['status']}, tts_ready {body['tts_ready']}, rvc_ready {body['rvc_ready']}"

    def triton_ready() -> str:
        client = grpcclient.InferenceServerClient(f"{host}:{grpc_port}")
        try:
            assert client.is_server_live(client_timeout=timeout), "not live"
            assert client.is_server_ready(client_timeout=timeout), "not ready"
            metadata = client.get_server_metadata(as_json=True)
        finally:
            client.close()
        return f"tritonserver {metadata.get('version', '?')} live and ready"

    return [Check(f"API port {api_port}", lambda: tcp(api_port)), Check("API /health", api_health),
            Check(f"Triton gRPC port {grpc_port}", lambda: tcp(grpc_port)), Check("Triton live/ready", triton_ready)]


def main(argv: list[str] | None = None) -> int:
    parser = base_parser("Check that the Voice API and Triton can be reached.", port=8080)
    parser.add_argument("--api-port", type=int, default=None, help="Voice API port (default: --port, 8080)")
    parser.add_argument("--grpc-port", type=int, default=8001, help="Triton gRPC port")
    args = parser.parse_args(argv)
    checks = connection_checks(args.host, args.api_port or args.port, args.grpc_port, args.timeout)
    return print_table(f"connections to {args.host}", run_checks(checks, verbose=args.verbose))


if __name__ == "__main__":
    sys.exit(main())
