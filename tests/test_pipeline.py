"""Full TTS+RVC pipeline checks: ``python -m tests.test_pipeline --host H --port 8080 --reference ref.wav``."""

from __future__ import annotations

import base64
import json
import sys

import httpx

from tests.seed_cli import Check, clip_cli, decode_wav, parse_multipart, parse_sse

TEXT = "Hello there. This is the voice service speaking. Goodbye!"


def pipeline_checks(base_url: str, reference: bytes, timeout: float) -> list[Check]:
    files = {"reference_audio": ("reference.wav", reference, "audio/wav")}

    def synthesize() -> str:
        response = httpx.post(f"{base_url}/synthesize", data={"text": TEXT}, files=files, timeout=timeout)
        assert response.status_code == 200, response.text[:300]
        wav, rate = decode_wav(response.content)
        assert rate == int(response.headers["X-Sample-Rate"]) and len(wav) > 0
        assert int(response.headers["X-Sentences"]) == 3
        return (f"{len(wav) / rate:.2f} s at {rate} Hz; TTS {response.headers['X-TTS-Time']} s, "
                f"RVC {response.headers['X-RVC-Time']} s, total {response.headers['X-Total-Time']} s")

    def stream() -> str:
        response = httpx.post(f"{base_url}/synthesize/stream", data={"text": TEXT}, files=files, timeout=timeout)
        assert response.status_code == 200, response.text[:300]
        parts = parse_multipart(response.content, response.headers["content-type"])
        assert [headers["x-sentence-index"] for headers, _ in parts] == ["0", "1", "2"], parts
        for _, payload in parts:
            assert len(decode_wav(payload)[0]) > 0
        return f"{len(parts)} WAV parts in order"

    def sse() -> str:
        response = httpx.post(f"{base_url}/synthesize/sse", data={"text": TEXT}, files=files, timeout=timeout)
        assert response.status_code == 200, response.text[:300]
        events = parse_sse(response.text)
        names = [name for name, _ in events]
        assert names[0] == "start" and names[-1] == "end" and names.count("chunk") == 3, names
        for name, data in events:
            if name == "chunk":
                assert len(decode_wav(base64.b64decode(json.loads(data)["audio"]))[0]) > 0
        return "start, 3 chunks, end"

    def tts_only() -> str:
        response = httpx.post(f"{base_url}/tts", data={"text": "TTS only."}, files=files, timeout=timeout)
        assert response.status_code == 200 and response.headers["X-Sample-Rate"] == "16000", response.text[:300]
        return f"{float(response.headers['X-Audio-Duration']):.2f} s at 16 kHz"

    return [Check("POST /synthesize", synthesize), Check("POST /synthesize/stream", stream),
            Check("POST /synthesize/sse", sse), Check("POST /tts", tts_only)]


def main(argv: list[str] | None = None) -> int:
    return clip_cli(argv, description="Check the full TTS+RVC pipeline of a running service.", port=8080,
                    clip_option="--reference", clip_help="reference clip", address="http://{host}:{port}",
                    title="TTS+RVC pipeline", checks=pipeline_checks)


if __name__ == "__main__":
    sys.exit(main())
