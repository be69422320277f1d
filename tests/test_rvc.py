"""RVC-only checks: ``python -m tests.test_rvc --host H --port 8080 --input audio.wav``."""

from __future__ import annotations

import sys

import httpx

from tests.seed_cli import Check, clip_cli, decode_wav


def rvc_checks(base_url: str, audio: bytes, timeout: float) -> list[Check]:
    def convert(**fields: str) -> str:
        response = httpx.post(
            f"{base_url}/rvc", files={"audio": ("input.wav", audio, "audio/wav")}, data=fields, timeout=timeout
        )
        assert response.status_code == 200, response.text[:300]
        wav, rate = decode_wav(response.content)
        assert len(wav) > 0
        return f"{len(wav) / rate:.2f} s at {rate} Hz in {response.headers['X-RVC-Time']} s"

    def refused() -> str:
        response = httpx.post(
            f"{base_url}/rvc", files={"audio": ("input.wav", audio, "audio/wav")}, data={"f0_method": "nope"},
            timeout=timeout,
        )
        assert response.status_code == 400, response.status_code
        return response.json()["error"]["message"][:80]

    return [Check("POST /rvc (defaults)", convert), Check("POST /rvc pitch +12, pm", lambda: convert(pitch_shift="12", f0_method="pm")),
            Check("POST /rvc harvest", lambda: convert(f0_method="harvest")), Check("bad f0_method is 400", refused)]


def main(argv: list[str] | None = None) -> int:
    return clip_cli(argv, description="Check RVC conversion of a running service.", port=8080,
                    clip_option="--input", clip_help="speech to convert", address="http://{host}:{port}",
                    title="RVC", checks=rvc_checks)


if __name__ == "__main__":
    sys.exit(main())
