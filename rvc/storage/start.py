"""Opening the storage at gateway start: the URL from DATABASE_URL or STATE_DIR, migrations, the import."""

from __future__ import annotations

import logging
from pathlib import Path

from rvc.errors import StorageUnavailable
from rvc.storage.database import Database, database_url
from rvc.storage.legacy import import_legacy_files

__all__ = ["open_storage"]

logger = logging.getLogger(__name__)


def open_storage(
    url: str | None, *, state_dir: Path, voices_dir: Path | None, connect_timeout_s: float = 5.0
) -> Database:
    """The database for ``url`` (DATABASE_URL; None: SQLite in ``state_dir``), migrated and with the
    file stores under ``voices_dir`` and ``state_dir`` imported the first time.

    A database that is down does not stop the start: the error is logged, the
    routes that need storage answer 503 and preparation is retried on their
    next call. ConfigError (a malformed DATABASE_URL) does stop it.
    """
    database = Database(
        database_url(url, state_dir=state_dir), connect_timeout_s=connect_timeout_s,
        on_prepared=lambda prepared: import_legacy_files(prepared, voices_dir=voices_dir, state_dir=state_dir),
    )
    try:
        database.prepare()
    except StorageUnavailable as exc:
        logger.error("%s; saved voices and stored defaults answer 503 until it is reachable", exc.message)
    return database
