"""Long-form jobs in the database: their state, a lease for the gateway running each, their sentences' audio.

A job moves ``queued`` → ``running`` (a gateway claimed it) → ``done`` or
``failed``; ``queued``/``running`` → ``cancelled`` (DELETE); ``running`` →
``queued`` when its gateway stops or a backend is down (``not_before`` delays
the retry). Gateways share the database, so every change of hands is one
conditional UPDATE that names the state (and, while running, the owner) it
expects: a claim succeeds for one gateway only, and a gateway that lost its
lease (it stalled past ``lease_expires`` and another took the job) finds its
next write refused and stops. On PostgreSQL the claim's SELECT also takes the
row ``FOR UPDATE SKIP LOCKED``; writes are serialised database-wide anyway
(``Database.write``).

A sentence's row and the job's progress commit together, keyed by the
sentence's position and guarded by ``sentences_done``: whoever resumes a job
starts at the first sentence without a row, and no sentence is stored twice.
"""

from __future__ import annotations

import enum
import json
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, delete, func, insert, or_, select, update
from sqlalchemy.engine import Row

from rvc.errors import NotFound
from rvc.storage.database import Database
from rvc.storage.tables import JOB_SENTENCES, JOBS

__all__ = ["FinishedSentence", "JobRecord", "JobState", "JobStore", "JobWork", "NewJob", "StoredSentence"]


class JobState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobState.DONE, JobState.FAILED, JobState.CANCELLED)


ACTIVE = (JobState.QUEUED.value, JobState.RUNNING.value)


@dataclass(frozen=True)
class NewJob:
    id: str
    request: str  # the resolved request as JSON; validated by the caller's model on read
    reference: bytes  # float32 little-endian at 16 kHz
    sentences_total: int
    chars_total: int


@dataclass(frozen=True)
class JobRecord:
    """A job's row without its blobs: what status and listing show."""

    id: str
    state: JobState
    request: str
    sentences_total: int
    chars_total: int
    sentences_done: int
    chars_done: int
    audio_seconds: float
    work_s: float
    warnings: tuple[str, ...]
    error: str | None
    attempts: int
    owner: str | None
    created_at: float
    updated_at: float
    started_at: float | None
    finished_at: float | None


@dataclass(frozen=True)
class JobWork:
    """What a gateway needs to (re)start a claimed job."""

    record: JobRecord
    reference: bytes


@dataclass(frozen=True)
class FinishedSentence:
    position: int
    sample_rate: int
    samples: int
    audio: bytes  # FLAC
    chars: int
    work_s: float
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class StoredSentence:
    position: int
    sample_rate: int
    samples: int
    audio: bytes


_RECORD_COLUMNS = [column for column in JOBS.c if column.name != "reference"]


def _record(row: Row[Any]) -> JobRecord:
    values = row._mapping
    return JobRecord(
        id=values["id"], state=JobState(values["state"]), request=values["request"],
        sentences_total=values["sentences_total"], chars_total=values["chars_total"],
        sentences_done=values["sentences_done"], chars_done=values["chars_done"],
        audio_seconds=values["audio_seconds"], work_s=values["work_s"],
        warnings=tuple(json.loads(values["warnings"])), error=values["error"], attempts=values["attempts"],
        owner=values["owner"], created_at=values["created_at"], updated_at=values["updated_at"],
        started_at=values["started_at"], finished_at=values["finished_at"],
    )


def _claimable(now: float) -> Any:
    return or_(
        and_(JOBS.c.state == JobState.QUEUED.value, JOBS.c.not_before <= now),
        and_(JOBS.c.state == JobState.RUNNING.value, JOBS.c.lease_expires < now),
    )


def _held(job_id: str, owner: str) -> Any:
    return and_(JOBS.c.id == job_id, JOBS.c.owner == owner, JOBS.c.state == JobState.RUNNING.value)


class JobStore:
    """The jobs table for one gateway; ``lease_s`` is how long a claim or renewal holds a job."""

    def __init__(self, database: Database, *, lease_s: float) -> None:
        self.database = database
        self.lease_s = lease_s

    @staticmethod
    def _find(connection: Connection, job_id: str) -> JobRecord:
        row = connection.execute(select(*_RECORD_COLUMNS).where(JOBS.c.id == job_id)).one_or_none()
        if row is None:
            raise NotFound(f"no job {job_id!r}: it never existed or its retention ran out (GET /jobs lists them)")
        return _record(row)

    def create(self, job: NewJob) -> JobRecord:
        now = time.time()

        def write(connection: Connection) -> JobRecord:
            connection.execute(insert(JOBS).values(
                id=job.id, state=JobState.QUEUED.value, request=job.request, reference=job.reference,
                sentences_total=job.sentences_total, chars_total=job.chars_total, sentences_done=0, chars_done=0,
                audio_seconds=0.0, work_s=0.0, warnings="[]", error=None, attempts=0, owner=None,
                lease_expires=None, not_before=0.0, created_at=now, updated_at=now, started_at=None,
                finished_at=None,
            ))
            return self._find(connection, job.id)

        return self.database.write(write)

    def get(self, job_id: str) -> JobRecord:
        return self.database.read(lambda connection: self._find(connection, job_id))

    def recent(self, *, limit: int, state: JobState | None = None) -> list[JobRecord]:
        """The newest ``limit`` jobs first."""
        query = select(*_RECORD_COLUMNS).order_by(JOBS.c.created_at.desc(), JOBS.c.id).limit(limit)
        if state is not None:
            query = query.where(JOBS.c.state == state.value)
        return self.database.read(lambda connection: [_record(row) for row in connection.execute(query)])

    def claimable(self) -> bool:
        """A cheap read first, so an idle gateway never takes the write lock to find nothing."""
        query = select(JOBS.c.id).where(_claimable(time.time())).limit(1)
        return self.database.read(lambda connection: connection.execute(query).first() is not None)

    def claim(self, owner: str) -> JobWork | None:
        """The oldest queued job (or one whose lease ran out), now running under ``owner``; None if none."""
        now = time.time()

        def write(connection: Connection) -> JobWork | None:
            query = select(JOBS.c.id).where(_claimable(now)).order_by(JOBS.c.created_at).limit(1)
            if self.database.dialect == "postgresql":
                query = query.with_for_update(skip_locked=True)
            job_id = connection.execute(query).scalar_one_or_none()
            if job_id is None:
                return None
            claimed = connection.execute(
                update(JOBS).where(JOBS.c.id == job_id, _claimable(now)).values(
                    state=JobState.RUNNING.value, owner=owner, lease_expires=now + self.lease_s, updated_at=now,
                    started_at=func.coalesce(JOBS.c.started_at, now),
                )
            )
            if claimed.rowcount != 1:
                return None
            reference = connection.execute(select(JOBS.c.reference).where(JOBS.c.id == job_id)).scalar_one()
            return JobWork(self._find(connection, job_id), bytes(reference))

        return self.database.write(write)

    def renew(self, job_id: str, owner: str) -> bool:
        """Extend the lease; False when the job is no longer this owner's to run (cancelled, taken over)."""
        now = time.time()

        def write(connection: Connection) -> bool:
            renewed = connection.execute(
                update(JOBS).where(_held(job_id, owner)).values(lease_expires=now + self.lease_s)
            )
            return renewed.rowcount == 1

        return self.database.write(write)

    def add_sentence(self, job_id: str, owner: str, sentence: FinishedSentence) -> bool:
        """Store one finished sentence and the job's progress together; False if the job is not ours any more."""
        now = time.time()

        def write(connection: Connection) -> bool:
            row = connection.execute(
                select(JOBS.c.warnings).where(_held(job_id, owner), JOBS.c.sentences_done == sentence.position)
            ).one_or_none()
            if row is None:
                return False
            warnings = [*json.loads(row.warnings), *sentence.warnings]
            connection.execute(update(JOBS).where(JOBS.c.id == job_id).values(
                sentences_done=JOBS.c.sentences_done + 1, chars_done=JOBS.c.chars_done + sentence.chars,
                audio_seconds=JOBS.c.audio_seconds + sentence.samples / sentence.sample_rate,
                work_s=JOBS.c.work_s + sentence.work_s, warnings=json.dumps(warnings),
                lease_expires=now + self.lease_s, updated_at=now,
            ))
            connection.execute(insert(JOB_SENTENCES).values(
                job_id=job_id, position=sentence.position, sample_rate=sentence.sample_rate,
                samples=sentence.samples, audio=sentence.audio, created_at=now,
            ))
            return True

        return self.database.write(write)

    def _leave(self, job_id: str, owner: str, **values: Any) -> bool:
        now = time.time()

        def write(connection: Connection) -> bool:
            changes = dict(values)
            note = changes.pop("warning", None)
            if note is not None:
                current = connection.execute(select(JOBS.c.warnings).where(JOBS.c.id == job_id)).scalar_one_or_none()
                changes["warnings"] = json.dumps([*json.loads(current or "[]"), note])
            left = connection.execute(
                update(JOBS).where(_held(job_id, owner)).values(owner=None, lease_expires=None, updated_at=now, **changes)
            )
            return left.rowcount == 1

        return self.database.write(write)

    def finish(self, job_id: str, owner: str) -> bool:
        return self._leave(job_id, owner, state=JobState.DONE.value, finished_at=time.time())

    def fail(self, job_id: str, owner: str, error: str) -> bool:
        return self._leave(job_id, owner, state=JobState.FAILED.value, error=error, finished_at=time.time())

    def requeue(self, job_id: str, owner: str, *, delay_s: float, warning: str | None = None) -> bool:
        """Back to the queue after a transient failure; counts an attempt."""
        return self._leave(
            job_id, owner, state=JobState.QUEUED.value, not_before=time.time() + delay_s,
            attempts=JOBS.c.attempts + 1, warning=warning,
        )

    def release(self, job_id: str, owner: str) -> bool:
        """Back to the queue at once, no attempt counted: the gateway is stopping."""
        return self._leave(job_id, owner, state=JobState.QUEUED.value, not_before=0.0)

    def cancel(self, job_id: str) -> JobRecord:
        """Cancel a queued or running job (its gateway sees it at its next write or renewal)."""
        now = time.time()

        def write(connection: Connection) -> JobRecord:
            connection.execute(
                update(JOBS).where(JOBS.c.id == job_id, JOBS.c.state.in_(ACTIVE)).values(
                    state=JobState.CANCELLED.value, owner=None, lease_expires=None, updated_at=now, finished_at=now,
                )
            )
            return self._find(connection, job_id)

        return self.database.write(write)

    def delete(self, job_id: str) -> None:
        def write(connection: Connection) -> None:
            self._find(connection, job_id)
            connection.execute(delete(JOB_SENTENCES).where(JOB_SENTENCES.c.job_id == job_id))
            connection.execute(delete(JOBS).where(JOBS.c.id == job_id))

        self.database.write(write)

    def sentences(self, job_id: str) -> tuple[JobRecord, list[StoredSentence]]:
        """The job and its finished sentences in order, read in one transaction (so they agree)."""
        def read(connection: Connection) -> tuple[JobRecord, list[StoredSentence]]:
            record = self._find(connection, job_id)
            rows = connection.execute(
                select(JOB_SENTENCES.c.position, JOB_SENTENCES.c.sample_rate, JOB_SENTENCES.c.samples,
                       JOB_SENTENCES.c.audio)
                .where(JOB_SENTENCES.c.job_id == job_id).order_by(JOB_SENTENCES.c.position)
            )
            return record, [StoredSentence(row.position, row.sample_rate, row.samples, bytes(row.audio)) for row in rows]

        return self.database.read(read)

    def purge(self, finished_before: float) -> int:
        """Delete finished jobs (and their audio) that finished before ``finished_before``; returns how many."""
        def write(connection: Connection) -> int:
            expired = select(JOBS.c.id).where(
                JOBS.c.state.notin_(ACTIVE), JOBS.c.finished_at < finished_before
            )
            ids = list(connection.execute(expired).scalars())
            if ids:
                connection.execute(delete(JOB_SENTENCES).where(JOB_SENTENCES.c.job_id.in_(ids)))
                connection.execute(delete(JOBS).where(JOBS.c.id.in_(ids)))
            return len(ids)

        return self.database.write(write)

    def has_expired(self, finished_before: float) -> bool:
        query = select(JOBS.c.id).where(JOBS.c.state.notin_(ACTIVE), JOBS.c.finished_at < finished_before).limit(1)
        return self.database.read(lambda connection: connection.execute(query).first() is not None)
