"""The stored default settings, the default reference clip and the storage's markers, in the database.

Same contract as the file-based ``DefaultsStore`` it replaces: ``get`` returns
an immutable snapshot (a request keeps the one it started with), ``update``
applies overrides to the current value and stores the result whole. The
settings model is the caller's (``SynthesisDefaults``): storage keeps its JSON
and validates it on read with the model it was given, so adding a tunable
needs no migration. A stored document the model no longer accepts is logged
and read as the model's defaults, as the file store did with an unreadable
``config.json``; it stays in the table until the next update replaces it.
"""

from __future__ import annotations

import logging
import time
from typing import Generic, Protocol, TypeVar

import numpy as np
from pydantic import BaseModel, ValidationError
from sqlalchemy import Connection, delete, insert, select, update

from rvc.storage.clips import StoredReference, clip_bytes, clip_from_bytes, clip_sha256
from rvc.storage.database import Database
from rvc.storage.tables import DEFAULT_REFERENCE, META, STORED_DEFAULTS

__all__ = ["SETTINGS_KEY", "Applies", "Markers", "StoredDefaults", "get_marker", "put_reference", "set_marker"]

logger = logging.getLogger(__name__)

D = TypeVar("D", bound=BaseModel)
SETTINGS_KEY = "synthesis"
_REFERENCE_KEY = "default"


class Applies(Protocol[D]):
    """What ``update`` needs of its argument (``SynthesisOverrides`` is one)."""

    def apply(self, defaults: D) -> D: ...


class StoredDefaults(Generic[D]):
    """``defaults_type()`` must build the factory defaults (every field has a default)."""

    def __init__(self, database: Database, defaults_type: type[D]) -> None:
        self.database = database
        self._type = defaults_type

    def _parse(self, document: str | None) -> D:
        if document is None:
            return self._type()
        try:
            return self._type.model_validate_json(document)
        except ValidationError as exc:
            logger.warning("ignoring unreadable stored defaults (%s): %s", self.database.describe(), exc)
            return self._type()

    @staticmethod
    def _document(connection: Connection) -> str | None:
        query = select(STORED_DEFAULTS.c.document).where(STORED_DEFAULTS.c.key == SETTINGS_KEY)
        return connection.execute(query).scalar_one_or_none()

    def get(self) -> D:
        return self._parse(self.database.read(self._document))

    def update(self, overrides: Applies[D]) -> D:
        def write(connection: Connection) -> D:
            current = self._document(connection)
            updated = overrides.apply(self._parse(current))
            values = {"document": updated.model_dump_json(), "updated_at": time.time()}
            if current is None:
                connection.execute(insert(STORED_DEFAULTS).values(key=SETTINGS_KEY, **values))
            else:
                connection.execute(update(STORED_DEFAULTS).where(STORED_DEFAULTS.c.key == SETTINGS_KEY).values(values))
            return updated

        return self.database.write(write)

    def reference(self) -> StoredReference | None:
        def read(connection: Connection) -> StoredReference | None:
            row = connection.execute(
                select(DEFAULT_REFERENCE).where(DEFAULT_REFERENCE.c.key == _REFERENCE_KEY)
            ).one_or_none()
            if row is None:
                return None
            return StoredReference(clip_from_bytes(row.samples), row.sample_rate, row.sha256, row.stored_at)

        return self.database.read(read)

    def set_reference(self, wav: np.ndarray, sample_rate: int) -> StoredReference:
        """wav: (T,) float32 mono (any shape is flattened) at ``sample_rate``; replaces the stored clip."""
        samples = np.ascontiguousarray(wav, dtype=np.float32).reshape(-1)
        samples.setflags(write=False)
        reference = StoredReference(samples, int(sample_rate), clip_sha256(samples), time.time())
        return self.database.write(lambda connection: put_reference(connection, reference))

    def clear_reference(self) -> bool:
        def write(connection: Connection) -> bool:
            gone = connection.execute(delete(DEFAULT_REFERENCE).where(DEFAULT_REFERENCE.c.key == _REFERENCE_KEY))
            return bool(gone.rowcount)

        return self.database.write(write)


def put_reference(connection: Connection, reference: StoredReference) -> StoredReference:
    values = {
        "sha256": reference.sha256, "sample_rate": reference.sample_rate,
        "samples": clip_bytes(reference.wav), "stored_at": reference.stored_at,
    }
    where = DEFAULT_REFERENCE.c.key == _REFERENCE_KEY
    if connection.execute(select(DEFAULT_REFERENCE.c.key).where(where)).first() is None:
        connection.execute(insert(DEFAULT_REFERENCE).values(key=_REFERENCE_KEY, **values))
    else:
        connection.execute(update(DEFAULT_REFERENCE).where(where).values(values))
    return reference


class Markers:
    """Small facts the service records once per database ("the default voice was seeded", imports)."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def get(self, key: str) -> str | None:
        return self.database.read(lambda connection: get_marker(connection, key))

    def set(self, key: str, value: str) -> None:
        self.database.write(lambda connection: set_marker(connection, key, value))


def get_marker(connection: Connection, key: str) -> str | None:
    return connection.execute(select(META.c.value).where(META.c.key == key)).scalar_one_or_none()


def set_marker(connection: Connection, key: str, value: str) -> None:
    """Inside a write transaction: record ``key`` (replacing its value)."""
    values = {"value": value, "updated_at": time.time()}
    if get_marker(connection, key) is None:
        connection.execute(insert(META).values(key=key, **values))
    else:
        connection.execute(update(META).where(META.c.key == key).values(values))
