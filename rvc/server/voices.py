"""Voice names -> files in the weights folder, with no way out of it.

A voice is named by its file stem (``SilverWolf_e300_s6600``, with or without
``.pth``); the name comes from HTTP clients, so it is checked before it
touches the file system: only ``[A-Za-z0-9_.-]``, no leading dot, and the
resolved path (symlinks followed) must stay inside the weights folder.

The feature index sits beside the ``.pth``: either ``<stem>.index`` or the
name RVC's training writes, ``added_IVF<n>_Flat_nprobe_1_<experiment>_v<k>.index``,
where the experiment name is the ``.pth`` stem without the ``_e<epoch>_s<step>``
suffix that RVC adds to saved weights.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from rvc.errors import InvalidInput, NotFound

__all__ = ["VoiceFiles", "find_index", "list_voices", "resolve_voice", "voice_stem"]

logger = logging.getLogger(__name__)

_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_EPOCH_STEP_SUFFIX = re.compile(r"_e\d+_s\d+$")
_MAX_NAME_CHARS = 200


@dataclass(frozen=True)
class VoiceFiles:
    """A voice's name and its files (absolute paths inside the weights folder)."""

    name: str
    pth: Path
    index: Path | None


def voice_stem(name: str) -> str:
    """Validate a voice name and return it without ``.pth``; InvalidInput if unsafe."""
    if not isinstance(name, str):
        raise InvalidInput(f"voice must be a string, got {type(name).__name__}", field="voice")
    stem = name.removesuffix(".pth")
    if not stem or len(stem) > _MAX_NAME_CHARS or not _NAME.fullmatch(stem) or stem.startswith("."):
        raise InvalidInput(
            f"invalid voice name {name!r}: use the .pth file name from the weights folder "
            "(letters, digits, '_', '-', '.'; not starting with '.')",
            field="voice",
        )
    return stem


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def find_index(weights_dir: Path, stem: str) -> Path | None:
    """The ``.index`` file beside ``<stem>.pth``, or None.

    Looks for ``<stem>.index`` first, then ``added_*<stem>*.index`` and
    ``added_*<experiment>_v*.index`` (experiment = stem without ``_e<N>_s<M>``).
    Several matches: the lexically first is used and a warning names the others.
    """
    folder = Path(weights_dir).resolve()
    exact = folder / f"{stem}.index"
    if exact.is_file():
        return exact
    experiment = _EPOCH_STEP_SUFFIX.sub("", stem)
    patterns = [f"added_*{stem}*.index"]
    if experiment != stem:
        patterns.append(f"added_*_{experiment}_v*.index")
    for pattern in patterns:
        matches = sorted(p for p in folder.glob(pattern) if p.is_file() and _inside(p.resolve(), folder))
        if matches:
            if len(matches) > 1:
                logger.warning(
                    "several indexes for voice %s: using %s, ignoring %s",
                    stem,
                    matches[0].name,
                    [m.name for m in matches[1:]],
                )
            return matches[0]
    return None


def list_voices(weights_dir: Path) -> list[str]:
    """Names of the valid voices in the folder (sorted)."""
    folder = Path(weights_dir)
    if not folder.is_dir():
        return []
    names = []
    for path in folder.glob("*.pth"):
        stem = path.stem
        if _NAME.fullmatch(stem) and not stem.startswith(".") and path.is_file():
            names.append(stem)
    return sorted(names)


def resolve_voice(weights_dir: Path, name: str) -> VoiceFiles:
    """Check a voice name and find its files.

    Raises InvalidInput for an unsafe name or a path leaving the folder (a
    symlink pointing elsewhere), NotFound when no such ``.pth`` exists.
    """
    stem = voice_stem(name)
    folder = Path(weights_dir).resolve()
    pth = (folder / f"{stem}.pth").resolve()
    if not _inside(pth, folder):
        raise InvalidInput(f"voice {name!r} resolves outside the weights folder", field="voice")
    if not pth.is_file():
        available = list_voices(folder)
        shown = ", ".join(available[:10]) + (" ..." if len(available) > 10 else "")
        raise NotFound(
            f"no voice {stem!r} in the weights folder (available: {shown or 'none'})", field="voice"
        )
    return VoiceFiles(name=stem, pth=pth, index=find_index(folder, stem))
