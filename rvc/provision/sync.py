"""Run a download plan: skip what is complete, fetch the rest, report every file.

The report drives ``tools/download_all_assets.py``'s table and exit code. A
failed file does not stop the others (one run tells about every problem); an
unreachable hub does, because every later request would wait out its own
timeout.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rvc.provision.catalog import (
    SPARK_REPO,
    RemoteFile,
    VoiceSource,
    base_model_files,
    spark_files,
    voice_files,
)
from rvc.provision.hub import (
    HubClient,
    HubError,
    HubUnreachable,
    ProgressFactory,
    RemoteFileMissing,
    local_matches,
    part_path,
)
from rvc.provision.progress import format_bytes
from rvc.settings import Settings

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "FileOutcome",
    "Status",
    "SyncReport",
    "plan_files",
    "sync_files",
]

logger = logging.getLogger(__name__)

EXIT_OK = 0  # every requested file is present and verified (or, with --dry-run, the plan was made)
EXIT_FAILED = 1  # at least one required file could not be fetched or failed verification
EXIT_USAGE = 2  # bad arguments or settings
EXIT_UNREACHABLE = 3  # the hub gave no HTTP answer; nothing was downloaded
EXIT_INTERRUPTED = 130  # Ctrl-C; partial files are kept for the next run to resume


class Status(enum.Enum):
    PRESENT = "present"
    DOWNLOADED = "downloaded"
    PLANNED = "would download"
    SKIPPED = "not on hub (optional)"
    FAILED = "FAILED"


@dataclass(frozen=True)
class FileOutcome:
    remote: RemoteFile
    status: Status
    size: int | None = None
    detail: str = ""


@dataclass(frozen=True)
class SyncReport:
    outcomes: tuple[FileOutcome, ...]

    @property
    def failed(self) -> list[FileOutcome]:
        return [outcome for outcome in self.outcomes if outcome.status is Status.FAILED]

    @property
    def exit_code(self) -> int:
        return EXIT_FAILED if self.failed else EXIT_OK

    def count(self, status: Status) -> int:
        return sum(outcome.status is status for outcome in self.outcomes)

    def table(self) -> str:
        """One line per file: status, size, repository file -> local path (+ detail)."""
        lines = [f"{'status':<22} {'size':>10}  file -> destination"]
        for outcome in self.outcomes:
            size = format_bytes(outcome.size) if outcome.size is not None else "?"
            detail = f"  [{outcome.detail}]" if outcome.detail else ""
            lines.append(
                f"{outcome.status.value:<22} {size:>10}  {outcome.remote.label} -> {outcome.remote.destination}{detail}"
            )
        planned = [o.size or 0 for o in self.outcomes if o.status is Status.PLANNED]
        counts = ", ".join(
            f"{self.count(status)} {status.value}" for status in Status if self.count(status)
        )
        lines.append(counts + (f"; {format_bytes(sum(planned))} to fetch" if planned else ""))
        return "\n".join(lines)


def plan_files(
    hub: HubClient, settings: Settings, *, groups: Iterable[str], voices: Sequence[VoiceSource] = ()
) -> list[RemoteFile]:
    """Every file the chosen groups need, with its destination from the settings."""
    chosen = set(groups)
    files: list[RemoteFile] = []
    if "spark" in chosen:
        files += spark_files(settings.spark_model_dir, hub.list_files(SPARK_REPO))
    files += base_model_files(settings, chosen)
    if "voices" in chosen:
        files += voice_files(settings.weights_dir, voices)
    return files


def sync_files(
    hub: HubClient,
    files: Iterable[RemoteFile],
    *,
    dry_run: bool = False,
    verify_existing: bool = False,
    progress: ProgressFactory | None = None,
) -> SyncReport:
    """Bring each file up to date. Raises HubUnreachable (nothing more can be done); else reports."""
    outcomes = [
        _sync_one(hub, remote, dry_run=dry_run, verify_existing=verify_existing, progress=progress)
        for remote in files
    ]
    return SyncReport(tuple(outcomes))


def _sync_one(
    hub: HubClient, remote: RemoteFile, *, dry_run: bool, verify_existing: bool, progress: ProgressFactory | None
) -> FileOutcome:
    try:
        meta = hub.metadata(remote)
    except RemoteFileMissing as exc:
        if not remote.required:
            return FileOutcome(remote, Status.SKIPPED)
        return FileOutcome(remote, Status.FAILED, detail=exc.message)
    except HubUnreachable:
        raise
    except HubError as exc:
        return FileOutcome(remote, Status.FAILED, detail=exc.message)

    if remote.destination.is_file():
        if local_matches(remote.destination, meta, check_sha256=verify_existing):
            return FileOutcome(remote, Status.PRESENT, meta.size)
        logger.warning("%s: the local file differs from the hub's; fetching it again", remote.destination)
    if dry_run:
        part = part_path(remote.destination)
        have = part.stat().st_size if part.is_file() else 0
        detail = f"resume at {format_bytes(have)}" if have else ""
        return FileOutcome(remote, Status.PLANNED, meta.size, detail)
    try:
        hub.download(remote, meta, progress=progress)
    except HubUnreachable:
        raise
    except HubError as exc:
        logger.error("%s", exc.message)
        return FileOutcome(remote, Status.FAILED, meta.size, exc.message)
    return FileOutcome(remote, Status.DOWNLOADED, meta.size)
