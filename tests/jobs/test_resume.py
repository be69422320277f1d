"""Jobs outlive their gateway: handed over on a restart without repeating audio, shared by gateways on
PostgreSQL (each job claimed by one), and removed once their retention runs out."""

from __future__ import annotations

import io
import time
from pathlib import Path

import httpx
import soundfile as sf
from sqlalchemy import select

from rvc.settings import Settings
from rvc.storage import Database, database_url
from rvc.storage.tables import JOB_SENTENCES
from tests.conftest import free_port
from tests.jobs.conftest import (
    LONG_SENTENCES,
    LONG_TEXT,
    TIMEOUT,
    finished,
    gateway_settings,
    job,
    submit,
    wait_for,
)
from tests.postgres import PostgresCluster
from tests.stack import serve_app


def stored_sentences(url: str, job_id: str) -> list[tuple[int, int, int, float]]:
    """(position, samples, sample_rate, created_at) of each stored sentence, read from the database itself."""
    database = Database(url)
    try:
        query = (
            select(JOB_SENTENCES.c.position, JOB_SENTENCES.c.samples, JOB_SENTENCES.c.sample_rate,
                   JOB_SENTENCES.c.created_at)
            .where(JOB_SENTENCES.c.job_id == job_id).order_by(JOB_SENTENCES.c.position)
        )
        return database.read(lambda connection: [tuple(row) for row in connection.execute(query)])
    finally:
        database.close()


def test_a_job_stopped_with_its_gateway_resumes_on_the_next_after_its_last_sentence(
    triton_settings: Settings, tmp_path: Path
) -> None:
    settings = gateway_settings(triton_settings, tmp_path / "state")
    with serve_app(settings) as (_, first):
        job_id = submit(first, LONG_TEXT, seed=11).json()["id"]
        wait_for(first, job_id, lambda status: status["sentences_done"] >= 2)
    stopped_at = time.time()
    handed_over = stored_sentences(str(database_url(None, state_dir=settings.state_dir)), job_id)
    assert len(handed_over) >= 2

    with serve_app(settings.model_copy(update={"api_port": free_port()})) as (_, second):
        waiting = job(second, job_id)
        assert waiting["sentences_done"] == len(handed_over)  # nothing lost, nothing started over
        status = wait_for(second, job_id, finished)
        assert status["state"] == "done", status
        audio = httpx.get(f"{second}/jobs/{job_id}/audio", timeout=TIMEOUT)
    rows = stored_sentences(str(database_url(None, state_dir=settings.state_dir)), job_id)
    assert [row[0] for row in rows] == list(range(LONG_SENTENCES)) == list(range(status["sentences_total"]))
    assert rows[: len(handed_over)] == handed_over  # the first gateway's sentences were kept, not redone
    assert all(row[3] > stopped_at for row in rows[len(handed_over):])
    wav, rate = sf.read(io.BytesIO(audio.content), dtype="float32")
    joined = sum(row[1] for row in rows) - (LONG_SENTENCES - 1) * int(rate * 0.010)  # each once, crossfaded
    assert len(wav) == joined and abs(status["audio_seconds"] - sum(row[1] for row in rows) / rate) < 1e-3


def test_a_finished_job_and_its_audio_are_removed_after_the_retention(triton_settings: Settings, tmp_path: Path) -> None:
    settings = gateway_settings(triton_settings, tmp_path / "state", job_retention_s=3.0)
    with serve_app(settings) as (_, base_url):
        job_id = submit(base_url, "A short one.").json()["id"]
        done = wait_for(base_url, job_id, finished)
        assert done["state"] == "done"
        deadline = time.monotonic() + 30
        while httpx.get(f"{base_url}/jobs/{job_id}", timeout=TIMEOUT).status_code != 404:
            assert time.monotonic() < deadline, "the job outlived its retention"
            time.sleep(0.5)
        assert time.time() - done["finished_at"] >= 3.0
    assert stored_sentences(str(database_url(None, state_dir=settings.state_dir)), job_id) == []


def test_gateways_sharing_postgresql_claim_each_job_once(triton_settings: Settings, tmp_path: Path) -> None:
    cluster = PostgresCluster()
    try:
        cluster.start()
        url = cluster.url(cluster.create_database())
        settings = [
            gateway_settings(triton_settings, tmp_path / name, database_url=url) for name in ("a", "b")
        ]
        with serve_app(settings[0]) as (_, first), serve_app(settings[1]) as (_, second):
            jobs = [submit(first, LONG_TEXT).json()["id"] for _ in range(2)]
            # JOB_CONCURRENCY=1 on each: both running at once means each gateway claimed one
            deadline = time.monotonic() + 120
            while not all(job(second, job_id)["state"] == "running" for job_id in jobs):
                assert time.monotonic() < deadline, [job(second, job_id) for job_id in jobs]
                time.sleep(0.2)
            here = [httpx.get(f"{base}/status", timeout=TIMEOUT).json()["jobs"]["running_here"] for base in (first, second)]
            assert sorted(here[0] + here[1]) == sorted(jobs) and len(here[0]) == len(here[1]) == 1
            for job_id in jobs:
                assert wait_for(first, job_id, finished)["state"] == "done"
        for job_id in jobs:
            assert [row[0] for row in stored_sentences(url, job_id)] == list(range(LONG_SENTENCES))
    finally:
        cluster.remove()
