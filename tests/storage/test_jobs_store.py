"""The jobs table on SQLite and PostgreSQL: one claim per job, leases that move a job, sentences stored once."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from rvc.errors import NotFound
from rvc.storage import Database
from rvc.storage.jobs import FinishedSentence, JobState, JobStore, NewJob
from tests.storage.helpers import run_together


@pytest.fixture
def store(database_url: str) -> Iterator[JobStore]:
    database = Database(database_url)
    try:
        yield JobStore(database, lease_s=60.0)
    finally:
        database.close()


def new(job_id: str, sentences: int = 3) -> NewJob:
    return NewJob(id=job_id, request="{}", reference=b"\0" * 8, sentences_total=sentences, chars_total=10 * sentences)


def sentence(position: int) -> FinishedSentence:
    return FinishedSentence(position=position, sample_rate=16000, samples=1600, audio=b"flac", chars=10, work_s=0.5,
                            warnings=(f"note {position}",))


def test_gateways_claiming_together_get_each_job_once(store: JobStore) -> None:
    for index in range(3):
        store.create(new(f"{index:032x}"))
    claimed: list[str] = []
    owners = [f"gateway-{index}" for index in range(5)]
    errors = run_together([
        lambda owner=owner: claimed.append(work.record.id) if (work := store.claim(owner)) else None
        for owner in owners
    ])
    assert errors == []
    assert sorted(claimed) == [f"{index:032x}" for index in range(3)]
    assert store.claim("late") is None and not store.claimable()


def test_a_sentence_is_stored_once_and_only_by_the_job_s_owner(store: JobStore) -> None:
    store.create(new("a" * 32))
    work = store.claim("first")
    assert work is not None and work.reference == b"\0" * 8
    assert store.add_sentence("a" * 32, "first", sentence(0))
    assert not store.add_sentence("a" * 32, "first", sentence(0))  # already stored
    assert not store.add_sentence("a" * 32, "first", sentence(2))  # not the next one
    assert not store.add_sentence("a" * 32, "other", sentence(1))  # not the owner
    record, stored = store.sentences("a" * 32)
    assert [row.position for row in stored] == [0]
    assert (record.sentences_done, record.chars_done, record.warnings) == (1, 10, ("note 0",))
    assert record.audio_seconds == pytest.approx(0.1)


def test_a_lapsed_lease_moves_the_job_and_the_old_owner_is_refused(store: JobStore) -> None:
    store.lease_s = 0.2
    store.create(new("b" * 32))
    assert store.claim("dead") is not None
    store.add_sentence("b" * 32, "dead", sentence(0))
    time.sleep(0.3)
    taken = store.claim("alive")
    assert taken is not None and taken.record.sentences_done == 1  # resumed after the stored sentence
    assert not store.renew("b" * 32, "dead") and not store.add_sentence("b" * 32, "dead", sentence(1))
    assert store.renew("b" * 32, "alive") and store.add_sentence("b" * 32, "alive", sentence(1))


def test_release_requeue_cancel_and_purge(store: JobStore) -> None:
    store.create(new("c" * 32))
    assert store.claim("gateway") is not None
    assert store.release("c" * 32, "gateway") and store.get("c" * 32).state is JobState.QUEUED
    assert store.claim("gateway") is not None
    assert store.requeue("c" * 32, "gateway", delay_s=60.0, warning="triton down")
    requeued = store.get("c" * 32)
    assert (requeued.state, requeued.attempts, requeued.warnings) == (JobState.QUEUED, 1, ("triton down",))
    assert store.claim("gateway") is None  # waits out its delay
    cancelled = store.cancel("c" * 32)
    assert cancelled.state is JobState.CANCELLED and cancelled.finished_at is not None
    assert store.purge(time.time() - 60) == 0
    assert store.purge(time.time() + 1) == 1
    with pytest.raises(NotFound):
        store.get("c" * 32)
