"""One database behind the saved voices and stored defaults: SQLite in STATE_DIR, or PostgreSQL.

Several gateways may share it (PostgreSQL), so nothing here caches a row:
every read is a query, and what one gateway commits the next read anywhere
returns. Writes are serialised database-wide (``BEGIN IMMEDIATE`` on SQLite,
a transaction-scoped advisory lock on PostgreSQL): writes are rare (a voice
saved, a config changed), and one writer at a time makes every
read-modify-write (merge a voice's defaults, create-unless-exists) correct
without per-table locking rules. Readers never wait for a writer (WAL, MVCC).

Every SQLAlchemy or driver error is mapped here, once, to
``StorageUnavailable`` (503): the database being down or unreadable is a
component being unavailable, never a 500. Errors the callback raises on
purpose (``NotFound``, ``Conflict``...) roll the transaction back and pass
through unchanged.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from rvc.errors import ConfigError, StorageUnavailable, VoiceError

__all__ = ["SQLITE_FILE_NAME", "Database", "database_url"]

logger = logging.getLogger(__name__)

# How long a SQLite statement waits for another connection's write lock before it gives up (503).
_SQLITE_BUSY_TIMEOUT_S = 30.0

T = TypeVar("T")

SQLITE_FILE_NAME = "voice-service.sqlite3"
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Any constant works; it only has to be the same for every gateway on this database.
_WRITE_LOCK_KEY = 0x766F6963  # "voic"
_WRITE = "rvc_storage_write"


def database_url(database_url: str | None, *, state_dir: Path) -> URL:
    """DATABASE_URL if set (``postgresql://`` means psycopg 3), else SQLite in STATE_DIR.

    Raises ConfigError naming DATABASE_URL when it is not a URL SQLAlchemy
    can use or names a database other than SQLite or PostgreSQL.
    """
    if not database_url:
        return URL.create("sqlite", database=str(Path(state_dir) / SQLITE_FILE_NAME))
    try:
        url = make_url(database_url)
    except ArgumentError as exc:
        raise ConfigError(f"DATABASE_URL is not a database URL: {exc}") from exc
    if url.drivername in ("postgres", "postgresql", "postgresql+psycopg"):
        return url.set(drivername="postgresql+psycopg")
    if url.drivername in ("sqlite", "sqlite+pysqlite"):
        return url
    raise ConfigError(
        f"DATABASE_URL={url.render_as_string(hide_password=True)!r}: use postgresql://user:password@host/db "
        "(or sqlite:///path); unset it for SQLite in STATE_DIR"
    )


class Database:
    """An engine plus the transaction rules above; safe to share between threads.

    The schema is brought up to date (``migrate``, then ``on_prepared``, e.g.
    the import of the file stores) before the first read or write, and again
    on the next call if that failed: a gateway started while PostgreSQL was
    down serves what does not need storage and catches up when it is back.
    """

    def __init__(
        self, url: URL | str, *, connect_timeout_s: float = 5.0,
        on_prepared: Callable[[Database], object] | None = None,
    ) -> None:
        self.url = make_url(url) if isinstance(url, str) else url
        self.dialect = self.url.get_backend_name()
        self.engine = _engine(self.url, connect_timeout_s)
        self._on_prepared = on_prepared
        self._prepared = False
        self._preparing = threading.Lock()

    def prepare(self) -> None:
        """Migrate and run ``on_prepared`` unless done; StorageUnavailable (retried next call) if the database is down."""
        if self._prepared:
            return
        with self._preparing:
            if self._prepared:
                return
            self._prepared = True  # the steps below use read/write themselves
            try:
                self._make_folder()
                self.migrate()
                if self._on_prepared is not None:
                    self._on_prepared(self)
            except BaseException:
                self._prepared = False
                raise

    def _make_folder(self) -> None:
        if self.dialect != "sqlite" or not self.url.database or self.url.database == ":memory:":
            return
        folder = Path(self.url.database).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            logger.warning("storage database %s cannot be created: %s", self.describe(), exc)
            raise StorageUnavailable(
                "the storage database cannot be created (saved voices and stored defaults); see the server log"
            ) from exc

    def check(self) -> None:
        """Raise StorageUnavailable unless the database answers (and is prepared); for /health."""
        self.read(lambda connection: connection.execute(text("SELECT 1")).scalar_one())

    def describe(self) -> str:
        """The URL without its password, for logs and /status."""
        return self.url.render_as_string(hide_password=True)

    @contextmanager
    def _errors_mapped(self, action: str) -> Iterator[None]:
        try:
            yield
        except VoiceError:
            raise
        except SQLAlchemyError as exc:
            # The client sees that storage is down; addresses and driver text go to the log only.
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            logger.warning("storage database %s cannot %s: %s", self.describe(), action, reason)
            raise StorageUnavailable(
                f"the storage database cannot {action} right now (saved voices and stored defaults); retry shortly"
            ) from exc

    def read(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` in a read transaction; its queries see one committed state per statement."""
        self.prepare()
        with self._errors_mapped("be read"), self.engine.connect() as connection, connection.begin():
            return work(connection)

    def write(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` as the only writer; it commits whole, or (on any exception) not at all."""
        self.prepare()
        with self._errors_mapped("be written"), self.engine.connect() as connection:
            connection = connection.execution_options(**{_WRITE: True})
            with connection.begin():
                if self.dialect == "postgresql":
                    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _WRITE_LOCK_KEY})
                return work(connection)

    def migrate(self) -> str | None:
        """Upgrade the schema to the newest migration; a no-op when it is there. Returns the revision."""
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))

        def upgrade(connection: Connection) -> str | None:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
            return MigrationContext.configure(connection).get_current_revision()

        revision = self.write(upgrade)
        logger.info("storage database %s at migration %s", self.describe(), revision)
        return revision

    def current_revision(self) -> str | None:
        """The schema's migration, read without preparing (tests, ``python -m rvc.storage current``)."""
        self._make_folder()
        with self._errors_mapped("be read"), self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    @staticmethod
    def head_revision() -> str | None:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        return ScriptDirectory.from_config(config).get_current_head()

    def close(self) -> None:
        self.engine.dispose()


def _engine(url: URL, connect_timeout_s: float) -> Engine:
    if url.get_backend_name() == "postgresql":
        return create_engine(
            url, pool_pre_ping=True, pool_size=5, max_overflow=5, pool_timeout=connect_timeout_s,
            connect_args={"connect_timeout": max(1, round(connect_timeout_s))},
        )
    engine = create_engine(url, connect_args={"timeout": _SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False})

    # pysqlite's own transaction handling defers BEGIN and cannot say IMMEDIATE: take it over
    # (the SQLAlchemy documentation's recipe) so a writer holds the write lock from its first read.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        _switch_to_wal(cursor)  # the busy timeout is pysqlite's ``timeout`` above
        for pragma in ("synchronous=FULL", "foreign_keys=ON"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        writing = connection.get_execution_options().get(_WRITE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if writing else "BEGIN")

    return engine


def _switch_to_wal(cursor: Any) -> None:
    """Put the file in WAL mode, waiting out another process's write lock.

    On a fresh file the switch needs the write lock, and SQLite answers
    "database is locked" at once instead of calling the busy handler when a
    second gateway's connection holds the write lock (reproduced: it fails
    within a millisecond with a 30 s busy timeout set; two gateways starting
    together on one new file lost that race under load). So retry with
    backoff, for as long as any other statement would wait.
    """
    deadline = time.monotonic() + _SQLITE_BUSY_TIMEOUT_S
    pause_s = 0.01
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() + pause_s > deadline:
                raise
        time.sleep(pause_s)
        pause_s = min(pause_s * 2, 0.5)
