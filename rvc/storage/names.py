"""The saved-voice name rule, declared once for the storage layer and the request contract.

A name was a folder under ``VOICES_DIR`` before the database, and files
imported from there keep theirs, so the rule stays the folder-safe one:
``[A-Za-z0-9_.-]{1,64}``, not starting with a dot (no ``..``, no separators,
no hidden files). The ``voices.name`` column is 64 characters wide for the
same reason.
"""

from __future__ import annotations

import re

from rvc.errors import InvalidInput

__all__ = ["VOICE_NAME_MAX", "VOICE_NAME_PATTERN", "check_voice_name", "is_voice_name"]

VOICE_NAME_MAX = 64
# The one rule, enforced here and published as the ``pattern`` of the name fields in the OpenAPI schema.
VOICE_NAME_PATTERN = rf"^[A-Za-z0-9_-][A-Za-z0-9_.-]{{0,{VOICE_NAME_MAX - 1}}}$"
_NAME = re.compile(VOICE_NAME_PATTERN)


def is_voice_name(name: object) -> bool:
    return isinstance(name, str) and _NAME.fullmatch(name) is not None


def check_voice_name(name: str, *, field: str = "name") -> str:
    """Return ``name`` if it is a safe saved-voice name; InvalidInput naming the rule otherwise."""
    if not is_voice_name(name):
        raise InvalidInput(
            f"invalid voice name {name!r}: use 1-{VOICE_NAME_MAX} letters, digits, '_', '-' or '.', "
            "not starting with '.'",
            field=field,
        )
    return name
