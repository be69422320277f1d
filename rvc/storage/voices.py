"""Saved voices in the database: a name bound to a reference clip, its transcript, an RVC model and defaults.

A voice may also hold speaker tokens (``SpeakerTokens``, columns of their own): a designed voice has
only those (its clip is empty), and a cloned voice may keep its clip's, so Triton never tokenizes
the clip again. Replacing a voice's clip drops its tokens with it.

The same contract as the file-based ``VoiceStore`` it replaces (method for
method, messages included), with the record and saved-voice types given by
the caller (``VoiceRecord``, ``SavedVoice`` of ``rvc.processing.voices``):
storage keeps the record as JSON beside the clip's samples and validates it
with the caller's model on every read, so a record field added later needs no
migration. A row the model no longer accepts is logged and treated as absent,
as the file store treated an unreadable ``voice.json``; it stays stored.

Each write is one transaction under the database's single-writer rule, so
create-unless-exists, merging a voice's defaults and replacing its clip are
atomic across gateways: a reader sees the old voice or the new one, never a
record with another version's clip.

The one thing kept in memory is clips by content hash (``find`` runs on every
request that names a saved voice, and a clip is up to a few MB over the
network on PostgreSQL): the row's ``reference_sha256`` is read each time and
the cached samples are used only when it matches, so a cache entry can be
unused, never stale.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, Self, TypeVar

import numpy as np
from pydantic import BaseModel, ValidationError
from sqlalchemy import Connection, Row, delete, insert, select, update

from rvc.errors import Conflict, InvalidInput, NotFound, VoiceError
from rvc.storage.clips import clip_bytes, clip_from_bytes, clip_sha256
from rvc.storage.database import Database
from rvc.storage.names import check_voice_name, is_voice_name
from rvc.storage.tables import VOICES

__all__ = ["REFERENCE_RATE", "SavedVoiceStore", "SpeakerTokens", "VoiceRecordModel"]

logger = logging.getLogger(__name__)

REFERENCE_RATE = 16000  # Spark-TTS's rate: clips are stored as Triton receives them
_CHANGEABLE = frozenset({"description", "reference_text", "rvc_model"})
_CACHED_CLIPS = 16


@dataclass(frozen=True)
class SpeakerTokens:
    """A voice's Spark-TTS speaker tokens: 32 global ids in 0..4095, and its clip's semantic ids
    (None for a designed voice, which has no clip)."""

    global_tokens: tuple[int, ...]
    semantic_tokens: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if len(self.global_tokens) != 32 or not all(0 <= t < 4096 for t in self.global_tokens):
            raise InvalidInput("global_tokens must be 32 ids in 0..4095", field="global_tokens")

    @classmethod
    def from_columns(cls, global_tokens: str | None, semantic_tokens: str | None) -> SpeakerTokens | None:
        if global_tokens is None:
            return None
        semantic = None if semantic_tokens is None else tuple(int(t) for t in json.loads(semantic_tokens))
        return cls(tuple(int(t) for t in json.loads(global_tokens)), semantic)

    def columns(self) -> dict[str, str | None]:
        semantic = None if self.semantic_tokens is None else json.dumps(list(self.semantic_tokens))
        return {"global_tokens": json.dumps(list(self.global_tokens)), "semantic_tokens": semantic}


_NO_TOKENS: dict[str, str | None] = {"global_tokens": None, "semantic_tokens": None}


class VoiceRecordModel(Protocol):
    """What storage reads of the caller's record model (a frozen pydantic model with these fields)."""

    @property
    def name(self) -> str: ...
    @property
    def defaults(self) -> BaseModel: ...
    @property
    def reference_seconds(self) -> float: ...
    @property
    def created_at(self) -> float: ...
    def model_dump(self) -> dict[str, Any]: ...
    def model_dump_json(self) -> str: ...
    @classmethod
    def model_validate(cls, obj: Any) -> Self: ...
    @classmethod
    def model_validate_json(cls, json_data: str | bytes) -> Self: ...


R = TypeVar("R", bound=VoiceRecordModel)
S = TypeVar("S")


class SavedVoiceStore(Generic[R, S]):
    """Saved voices; thread-safe and shared by every gateway on the database.

    ``record_type`` validates records (its field limits are the API's);
    ``saved_type(record, reference_wav, tokens)`` builds what ``find``/``get`` return;
    ``check_model`` validates an RVC model name and returns its stem (None
    accepts any name); ``clip_resets`` names record fields a new clip sets to
    None (what described the tokens the clip replaces).
    """

    def __init__(
        self, database: Database, *, record_type: type[R],
        saved_type: Callable[[R, np.ndarray, SpeakerTokens | None], S],
        check_model: Callable[[str], str] | None = None, clip_resets: tuple[str, ...] = (),
    ) -> None:
        self.database = database
        self._clip_resets = clip_resets
        self._record_type = record_type
        self._saved_type = saved_type
        self._check_model = check_model
        self._clips: OrderedDict[str, np.ndarray] = OrderedDict()
        self._clips_lock = threading.Lock()

    def _cached_clip(self, sha256: str) -> np.ndarray | None:
        with self._clips_lock:
            samples = self._clips.get(sha256)
            if samples is not None:
                self._clips.move_to_end(sha256)
            return samples

    def _cache_clip(self, sha256: str, samples: np.ndarray) -> None:
        with self._clips_lock:
            self._clips[sha256] = samples
            while len(self._clips) > _CACHED_CLIPS:
                self._clips.popitem(last=False)

    # ------------------------------------------------------------------ reading
    def _parse(self, name: str, document: str) -> R | None:
        try:
            return self._record_type.model_validate_json(document)
        except (ValidationError, ValueError) as exc:
            logger.warning("ignoring unreadable saved voice %s in %s: %s", name, self.database.describe(), exc)
            return None

    @staticmethod
    def _row(connection: Connection, name: str) -> Row[str, int, str, str | None, str | None] | None:
        columns = (VOICES.c.record, VOICES.c.sample_rate, VOICES.c.reference_sha256, VOICES.c.global_tokens,
                   VOICES.c.semantic_tokens)
        return connection.execute(select(*columns).where(VOICES.c.name == name)).one_or_none()

    def _read_record(self, connection: Connection, name: str) -> R | None:
        row = self._row(connection, check_voice_name(name))
        return None if row is None else self._parse(name, row.record)

    def names(self) -> list[str]:
        def read(connection: Connection) -> list[str]:
            rows = connection.execute(select(VOICES.c.name).order_by(VOICES.c.name)).scalars()
            return [name for name in rows if is_voice_name(name)]

        return self.database.read(read)

    def records(self) -> list[R]:
        def read(connection: Connection) -> list[R]:
            rows = connection.execute(select(VOICES.c.name, VOICES.c.record).order_by(VOICES.c.name))
            found = (self._parse(row.name, row.record) for row in rows)
            return [record for record in found if record is not None]

        return self.database.read(read)

    def _missing(self, name: str) -> NotFound:
        shown = ", ".join(self.names()) or "none saved yet (POST /voices)"
        return NotFound(f"no saved voice {name!r} (saved voices: {shown})", field="voice")

    def record(self, name: str) -> R:
        record = self.database.read(lambda connection: self._read_record(connection, name))
        if record is None:
            raise self._missing(name)
        return record

    def find(self, name: str) -> S | None:
        """The voice with its clip ((T,) float32 at 16 kHz, read-only), or None when no voice has that name."""
        check_voice_name(name)

        def read(connection: Connection) -> tuple[R, np.ndarray, SpeakerTokens | None] | None:
            # Two statements, so the clip is fetched by the hash the record's row had: a voice
            # replaced in between gives no row, and the next pass reads the new version whole.
            while True:
                row = self._row(connection, name)
                record = None if row is None else self._parse(name, row.record)
                if row is None or record is None:
                    return None
                if row.sample_rate != REFERENCE_RATE:
                    raise VoiceError(f"saved voice {name!r}: clip is {row.sample_rate} Hz, expected {REFERENCE_RATE}")
                samples = self._cached_clip(row.reference_sha256)
                if samples is None:
                    data = connection.execute(select(VOICES.c.samples).where(
                        VOICES.c.name == name, VOICES.c.reference_sha256 == row.reference_sha256
                    )).scalar_one_or_none()
                    if data is None:
                        continue
                    samples = clip_from_bytes(data)
                    self._cache_clip(row.reference_sha256, samples)
                return record, samples, SpeakerTokens.from_columns(row.global_tokens, row.semantic_tokens)

        found = self.database.read(read)
        return None if found is None else self._saved_type(*found)

    def get(self, name: str) -> S:
        saved = self.find(name)
        if saved is None:
            raise self._missing(name)
        return saved

    # ------------------------------------------------------------------ writing
    def _model(self, rvc_model: str | None) -> str | None:
        if rvc_model is None or self._check_model is None:
            return rvc_model
        try:
            return self._check_model(rvc_model)
        except VoiceError as exc:
            raise InvalidInput(exc.message, field="rvc_model") from exc

    def _validated(self, fields: dict[str, Any]) -> R:
        try:
            return self._record_type.model_validate(fields)
        except ValidationError as exc:
            error = exc.errors()[0]
            field = ".".join(str(part) for part in error["loc"]) or None
            raise InvalidInput(f"{field}: {error['msg']}", field=field) from exc

    @staticmethod
    def _put(
        connection: Connection, record: R, samples: np.ndarray | None, *, exists: bool,
        tokens: SpeakerTokens | None = None,
    ) -> None:
        """Write ``record``; new ``samples`` replace the clip and the tokens with ``tokens``."""
        values: dict[str, Any] = {"record": record.model_dump_json(), "updated_at": time.time()}
        if samples is not None:
            values.update(reference_sha256=clip_sha256(samples), sample_rate=REFERENCE_RATE,
                          samples=clip_bytes(samples), **(tokens.columns() if tokens is not None else _NO_TOKENS))
        if exists:
            connection.execute(update(VOICES).where(VOICES.c.name == record.name).values(values))
        else:
            connection.execute(insert(VOICES).values(name=record.name, created_at=record.created_at, **values))

    def create(
        self,
        name: str,
        reference_wav: np.ndarray | None,
        *,
        reference_text: str = "",
        rvc_model: str | None = None,
        defaults: BaseModel | None = None,
        description: str = "",
        overwrite: bool = False,
        tokens: SpeakerTokens | None = None,
        record_fields: dict[str, Any] | None = None,
    ) -> R:
        """Save a voice. reference_wav: (T,) float32 at 16 kHz, or None for a designed voice, which then
        needs ``tokens``. ``record_fields``: more fields of the caller's record (e.g. how it was designed).
        Conflict (409) if it exists and not ``overwrite``."""
        check_voice_name(name)
        if reference_wav is None and tokens is None:
            raise InvalidInput("a voice needs a reference clip or speaker tokens", field="reference_audio")
        samples = _clip(reference_wav) if reference_wav is not None else np.zeros(0, np.float32)
        model = self._model(rvc_model)

        def write(connection: Connection) -> R:
            row = self._row(connection, name)
            existing = None if row is None else self._parse(name, row.record)
            if row is not None and not overwrite:
                raise Conflict(
                    f"a voice named {name!r} exists; send overwrite=true to replace it, or PATCH /voices/{name}",
                    field="name",
                )
            now = time.time()
            fields: dict[str, Any] = {
                "name": name, "description": description, "reference_text": reference_text, "rvc_model": model,
                "created_at": existing.created_at if existing else now, "updated_at": now, **_clip_fields(samples),
                **(record_fields or {}),
            }
            if defaults is not None:
                fields["defaults"] = _voice_defaults(defaults)
            record = self._validated(fields)
            self._put(connection, record, samples, exists=row is not None, tokens=tokens)
            return record

        record = self.database.write(write)
        kind = "designed" if reference_wav is None else f"{record.reference_seconds:.1f} s clip"
        logger.info("saved voice %s (%s, rvc_model %s)", name, kind, model)
        return record

    def update(
        self,
        name: str,
        *,
        reference_wav: np.ndarray | None = None,
        changes: dict[str, Any] | None = None,
        defaults: BaseModel | None = None,
    ) -> R:
        """Change the fields given: ``changes`` may hold description, reference_text and rvc_model
        (None there: the service default); ``defaults`` are merged field by field over the voice's."""
        check_voice_name(name)
        changes = dict(changes or {})
        unknown = set(changes) - _CHANGEABLE
        if unknown:
            raise InvalidInput(f"cannot change {sorted(unknown)} of a voice", field=sorted(unknown)[0])
        if "rvc_model" in changes:
            changes["rvc_model"] = self._model(changes["rvc_model"])
        samples = None if reference_wav is None else _clip(reference_wav)

        def write(connection: Connection) -> R | None:
            existing = self._read_record(connection, name)
            if existing is None:
                return None
            merged = existing.defaults
            if defaults is not None:
                merged = merged.model_copy(update=_voice_defaults(defaults).model_dump(exclude_none=True))
            fields = {**existing.model_dump(), **changes, "defaults": merged, "updated_at": time.time()}
            if samples is not None:
                fields.update(_clip_fields(samples), **dict.fromkeys(self._clip_resets))
            record = self._validated(fields)
            self._put(connection, record, samples, exists=True)
            return record

        record = self.database.write(write)
        if record is None:
            raise self._missing(name)
        return record

    def store_tokens(self, name: str, reference_sha256: str, tokens: SpeakerTokens) -> bool:
        """Keep the speaker tokens of voice ``name``'s clip, if its clip is still the one with that hash
        and has none yet (a clip replaced meanwhile keeps no stale tokens); True when they were written."""
        check_voice_name(name)

        def write(connection: Connection) -> bool:
            result = connection.execute(update(VOICES).where(
                VOICES.c.name == name, VOICES.c.reference_sha256 == reference_sha256, VOICES.c.global_tokens.is_(None),
            ).values(**tokens.columns()))
            return bool(result.rowcount)

        return self.database.write(write)

    def delete(self, name: str) -> R:
        check_voice_name(name)

        def write(connection: Connection) -> R | None:
            record = self._read_record(connection, name)
            if record is not None:
                connection.execute(delete(VOICES).where(VOICES.c.name == name))
            return record

        record = self.database.write(write)
        if record is None:
            raise self._missing(name)
        logger.info("deleted voice %s", name)
        return record


def _clip(reference_wav: np.ndarray) -> np.ndarray:
    samples = np.ascontiguousarray(reference_wav, dtype=np.float32)
    if samples.ndim != 1 or samples.size == 0 or not np.isfinite(samples).all():
        raise InvalidInput("reference_audio must be non-empty finite mono audio", field="reference_audio")
    return samples


def _clip_fields(samples: np.ndarray) -> dict[str, Any]:
    digest = clip_sha256(samples)
    return {
        "reference_file": f"reference-{digest[:16]}.wav", "reference_sha256": digest,
        "reference_seconds": round(samples.size / REFERENCE_RATE, 3),
    }


def _voice_defaults(defaults: BaseModel) -> BaseModel:
    """A voice's own defaults: the transcript lives in the record's ``reference_text``, not here."""
    if "reference_text" in type(defaults).model_fields:
        return defaults.model_copy(update={"reference_text": None})
    return defaults
