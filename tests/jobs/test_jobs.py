"""POST /jobs to the audio: accepted at once, made in the background, fetched whole or in part, cancelled, listed."""

from __future__ import annotations

import io
import time

import httpx
import numpy as np
import soundfile as sf

from tests.jobs.conftest import LONG_TEXT, TIMEOUT, finished, job, submit, wait_for

TEXT = "Hello there. How are you today?"


def test_a_job_answers_202_at_once_then_reports_progress_and_serves_its_audio(gateway: str) -> None:
    response = submit(gateway, TEXT, seed=5)
    assert response.status_code == 202, response.text
    created = response.json()
    assert response.headers["Location"] == f"/jobs/{created['id']}"
    assert created["state"] in ("queued", "running")
    assert created["sentences_total"] == 2 and created["sentences_done"] == 0 and created["eta_s"] is None

    status = wait_for(gateway, created["id"], finished)
    assert status["state"] == "done", status
    assert status["sentences_done"] == 2 and status["progress"] == 1.0 and status["eta_s"] == 0.0
    assert status["audio_seconds"] > 0 and status["error"] is None
    assert status["started_at"] >= status["created_at"] and status["finished_at"] >= status["started_at"]

    audio = httpx.get(f"{gateway}{status['audio_url']}", timeout=TIMEOUT)
    assert audio.status_code == 200, audio.text
    assert audio.headers["content-type"] == "audio/wav"
    assert audio.headers["X-Job-State"] == "done" and audio.headers["X-Sentences-Done"] == "2"
    wav, rate = sf.read(io.BytesIO(audio.content), dtype="float32")
    assert rate == 40000 and np.isfinite(wav).all()
    # the sentences joined with one 10 ms crossfade, as /synthesize joins them
    assert abs(len(wav) / rate - (status["audio_seconds"] - 0.010)) < 2e-3

    listed = httpx.get(f"{gateway}/jobs", params={"state": "done"}, timeout=TIMEOUT).json()["jobs"]
    assert created["id"] in [item["id"] for item in listed]


def test_a_job_keeps_its_output_format(gateway: str) -> None:
    created = submit(gateway, "One short line.", format="flac", sample_rate=16000).json()
    status = wait_for(gateway, created["id"], finished)
    assert status["state"] == "done" and status["format"] == "flac"
    audio = httpx.get(f"{gateway}/jobs/{created['id']}/audio", timeout=TIMEOUT)
    assert audio.headers["content-type"] == "audio/flac"
    _, rate = sf.read(io.BytesIO(audio.content))
    assert rate == 16000


def test_delete_cancels_a_running_and_a_queued_job_and_keeps_the_audio_done_so_far(gateway: str) -> None:
    running = submit(gateway, LONG_TEXT).json()["id"]
    queued = submit(gateway, LONG_TEXT).json()["id"]  # JOB_CONCURRENCY=1: it waits for the first
    wait_for(gateway, running, lambda status: status["sentences_done"] >= 1)
    assert job(gateway, queued)["state"] == "queued"
    early = httpx.get(f"{gateway}/jobs/{queued}/audio", timeout=TIMEOUT)
    assert early.status_code == 409 and early.headers["Retry-After"] == "2"
    assert early.json()["error"]["field"] == "id"

    for job_id in (running, queued):
        cancelled = httpx.delete(f"{gateway}/jobs/{job_id}", timeout=TIMEOUT)
        assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    done_then = job(gateway, running)["sentences_done"]
    time.sleep(2.0)
    after = job(gateway, running)
    assert after["state"] == "cancelled" and after["sentences_done"] == done_then < after["sentences_total"]
    assert job(gateway, queued)["sentences_done"] == 0

    partial = httpx.get(f"{gateway}/jobs/{running}/audio", timeout=TIMEOUT)
    assert partial.status_code == 200 and partial.headers["X-Job-State"] == "cancelled"
    assert partial.headers["X-Sentences-Done"] == str(done_then)

    removed = httpx.delete(f"{gateway}/jobs/{running}", timeout=TIMEOUT)
    assert removed.json() == {"deleted": running}
    assert httpx.get(f"{gateway}/jobs/{running}", timeout=TIMEOUT).status_code == 404


def test_bad_input_is_a_400_naming_the_field_and_what_is_allowed(gateway: str) -> None:
    def error(response: httpx.Response) -> dict[str, str]:
        assert response.status_code == 400, response.text
        return response.json()["error"]

    too_long = error(submit(gateway, "Words. " * 7200))
    assert too_long["field"] == "text" and "MAX_JOB_CHARS" in too_long["message"]
    assert error(submit(gateway, "   "))["field"] == "text"
    bad_format = error(submit(gateway, TEXT, format="wma"))
    assert bad_format["field"] == "format" and "mp3" in bad_format["message"]
    assert error(submit(gateway, TEXT, pitch_shift=99))["field"] == "pitch_shift"
    assert error(submit(gateway, TEXT, format="opus", sample_rate=44100))["field"] == "sample_rate"
    assert error(submit(gateway, TEXT, granularity="chunk"))["field"] == "granularity"
    assert error(submit(gateway, TEXT, voice="nobody"))["field"] == "voice"
    state = error(httpx.get(f"{gateway}/jobs", params={"state": "finished"}, timeout=TIMEOUT))
    assert state["field"] == "state" and "queued, running, done, failed, cancelled" in state["message"]
    assert error(httpx.get(f"{gateway}/jobs", params={"limit": 0}, timeout=TIMEOUT))["field"] == "limit"
    assert error(httpx.get(f"{gateway}/jobs/not-a-job", timeout=TIMEOUT))["field"] == "job_id"
    unknown = httpx.get(f"{gateway}/jobs/{'0' * 32}", timeout=TIMEOUT)
    assert unknown.status_code == 404
    not_form = httpx.post(f"{gateway}/jobs", json={"text": TEXT}, timeout=TIMEOUT)
    assert not_form.status_code == 415
