"""The stored default settings and default reference clip, in the storage database.

``rvc.storage.StoredDefaults`` keeps them (one transaction per change, shared
by every gateway on the database, nothing cached in a process); this binds it
to the request contract's ``SynthesisDefaults``.
"""

from __future__ import annotations

from rvc.processing.contract import SynthesisDefaults
from rvc.storage import Database, StoredDefaults, StoredReference

__all__ = ["DefaultsStore", "StoredReference"]


class DefaultsStore(StoredDefaults[SynthesisDefaults]):
    """The stored ``SynthesisDefaults`` and default reference clip."""

    def __init__(self, database: Database) -> None:
        super().__init__(database, SynthesisDefaults)
