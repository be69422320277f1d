"""HTTP API checks against a running service: ``python -m tests.test_http_api --host H --port 8080 [--full]``.

Without ``--full`` only the cheap routes are checked (health, status, config,
metrics, docs); ``--full`` also synthesises, streams and converts.
"""

from __future__ import annotations

import sys

import httpx

from tests.seed_cli import Check, base_parser, load_or_make_reference, print_table, run_checks
from tests.test_pipeline import pipeline_checks
from tests.test_rvc import rvc_checks


def api_checks(base_url: str, timeout: float) -> list[Check]:
    def health() -> str:
        body = httpx.get(f"{base_url}/health", timeout=timeout).json()
        assert body["status"] in ("ready", "degraded", "error"), body
        assert body["tts_ready"] and body["rvc_ready"], f"not ready: {body['problems']}"
        return f"{body['status']}{' (demo assets: random weights)' if body.get('demo_assets') else ''}"

    def status() -> str:
        body = httpx.get(f"{base_url}/status", timeout=timeout).json()
        alive = sum(1 for worker in body["rvc"].get("workers", []) if worker.get("pid"))
        return f"workers alive {alive}, queue {body['rvc'].get('queue_depth')}, triton {body['triton']['address']}"

    def config() -> str:
        body = httpx.get(f"{base_url}/config", timeout=timeout).json()
        assert "f0_method" in body["defaults"], body
        return f"f0_method={body['defaults']['f0_method']}, stored reference: {body['reference_audio']['stored']}"

    def metrics() -> str:
        response = httpx.get(f"{base_url}/metrics", timeout=timeout)
        assert response.status_code == 200 and "voice_api_requests_total" in response.text
        return "prometheus text"

    def docs() -> str:
        spec = httpx.get(f"{base_url}/openapi.json", timeout=timeout).json()
        missing = {"/synthesize", "/synthesize/stream", "/tts", "/rvc", "/health", "/status"} - set(spec["paths"])
        assert not missing, f"undocumented routes: {missing}"
        return f"{len(spec['paths'])} documented routes"

    def bad_input() -> str:
        response = httpx.post(f"{base_url}/synthesize", data={"text": "hi", "pitch_shift": "99"}, timeout=timeout)
        assert response.status_code == 400, response.status_code
        return response.json()["error"]["message"][:80]

    return [Check("GET /health", health), Check("GET /status", status), Check("GET /config", config),
            Check("GET /metrics", metrics), Check("OpenAPI docs", docs), Check("bad input is 400", bad_input)]


def main(argv: list[str] | None = None) -> int:
    parser = base_parser("Check the Voice HTTP API of a running service.", port=8080)
    parser.add_argument("--reference", help="reference clip (default: espeak-ng speech or a synthetic tone)")
    parser.add_argument("--full", action="store_true", help="also synthesise, stream and convert")
    args = parser.parse_args(argv)
    base_url = f"http://{args.host}:{args.port}"
    checks = api_checks(base_url, args.timeout)
    if args.full:
        reference = load_or_make_reference(args.reference)
        checks += pipeline_checks(base_url, reference, args.timeout) + rvc_checks(base_url, reference, args.timeout)
    return print_table(f"Voice HTTP API at {base_url}", run_checks(checks, verbose=args.verbose))


if __name__ == "__main__":
    sys.exit(main())
