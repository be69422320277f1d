"""Talking to a Hugging Face hub (or a mirror) over plain HTTP with httpx.

Written against the hub's public URL scheme rather than ``huggingface_hub``'s
downloader so that every byte goes through one client the tests can point at
a fake hub on loopback, and so that resuming is ours to get right:

* metadata: ``HEAD <endpoint>/<repo>/resolve/<revision>/<path>`` without
  following redirects. Large (LFS) files answer with a redirect carrying
  ``X-Linked-Size`` and ``X-Linked-Etag`` (the file's sha256); small files
  answer 200 with ``Content-Length`` and an ``ETag`` (their git blob id, which
  is not a sha256 and is not checked);
* transfer: ``GET`` the same URL, following redirects, into ``<file>.part``;
  an existing ``.part`` is continued with ``Range: bytes=<have>-``, and a
  server that ignores the range (200 instead of 206) restarts it cleanly;
* verification: the byte count against the advertised size, and the sha256
  when the hub gave one; only a verified file is renamed into place, so a
  file at its final path is always complete.

Foreign errors (httpx) are mapped here, once, into ``HubError`` and its
subclasses, which the command-line tool turns into exit codes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TypeVar
from urllib.parse import quote, urljoin

import httpx

from rvc.errors import AssetError
from rvc.provision.catalog import RemoteFile
from rvc.provision.progress import ProgressBar

__all__ = [
    "DEFAULT_ENDPOINT",
    "HubClient",
    "HubError",
    "HubUnreachable",
    "IntegrityError",
    "ProgressFactory",
    "RemoteFileMissing",
    "RemoteMetadata",
    "file_sha256",
    "local_matches",
    "part_path",
]

logger = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "https://huggingface.co"
_CHUNK_BYTES = 1 << 20
_SHA256 = re.compile(r"[0-9a-f]{64}")
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
_T = TypeVar("_T")
ProgressFactory = Callable[[str, "int | None", int], ProgressBar]


class HubError(AssetError):
    """A model file could not be fetched from the hub."""


class HubUnreachable(HubError):
    """No HTTP answer from the endpoint at all (DNS, refused, timed out)."""


class RemoteFileMissing(HubError):
    """The repository, revision or file does not exist on the hub (404)."""


class IntegrityError(HubError):
    """The downloaded bytes do not match the size or sha256 the hub advertised."""


class _Retryable(Exception):
    """A server-side failure (5xx) worth another try."""


@dataclass(frozen=True)
class RemoteMetadata:
    """What the hub says about one file before it is fetched."""

    url: str
    size: int | None  # bytes; None when the hub did not say
    sha256: str | None  # lower-case hex; None when the hub gave no sha256 etag


def part_path(destination: Path) -> Path:
    """Where an unfinished transfer of ``destination`` accumulates."""
    return destination.with_name(destination.name + ".part")


def local_matches(path: Path, meta: RemoteMetadata, *, check_sha256: bool) -> bool:
    """Whether a local file is the remote one: same size, and same sha256 when asked and known."""
    if meta.size is not None and path.stat().st_size != meta.size:
        return False
    if check_sha256 and meta.sha256 is not None:
        return file_sha256(path) == meta.sha256
    return True


def _etag_sha256(etag: str | None) -> str | None:
    if not etag:
        return None
    value = etag.strip().removeprefix("W/").strip('"').lower()
    return value if _SHA256.fullmatch(value) else None


def _int_header(headers: httpx.Headers, name: str) -> int | None:
    value = headers.get(name)
    return int(value) if value is not None and value.isdigit() else None


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_CHUNK_BYTES):
            digest.update(block)
    return digest.hexdigest()


class HubClient:
    """One HTTP client for one hub endpoint: ``with HubClient.from_environment() as hub: ...``."""

    def __init__(
        self,
        endpoint: str = DEFAULT_ENDPOINT,
        *,
        token: str | None = None,
        connect_timeout_s: float = 10.0,
        read_timeout_s: float = 60.0,
        retries: int = 3,
        retry_wait_s: float = 1.0,
    ) -> None:
        if retries < 0 or retry_wait_s < 0:
            raise ValueError(f"retries and retry_wait_s must be >= 0, got {retries}, {retry_wait_s}")
        self.endpoint = endpoint.rstrip("/")
        self.retries = retries
        self.retry_wait_s = retry_wait_s
        headers = {"Accept-Encoding": "identity", "User-Agent": "voice-service-downloader/0.1"}
        if token:
            headers["Authorization"] = f"Bearer {token}"  # httpx drops it on redirects to another host
        self._client = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(read_timeout_s, connect=connect_timeout_s),
        )

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None, **kwargs: object) -> HubClient:
        """Endpoint from ``HF_ENDPOINT`` (default huggingface.co), token from ``HF_TOKEN``."""
        env = os.environ if environ is None else environ
        endpoint = env.get("HF_ENDPOINT") or DEFAULT_ENDPOINT
        return cls(endpoint, token=env.get("HF_TOKEN") or None, **kwargs)  # type: ignore[arg-type]  # kwargs: the constructor's own keyword options, passed through

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> HubClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- metadata -----------------------------------------------------------------------

    def probe(self, timeout_s: float = 3.0) -> None:
        """Raise HubUnreachable unless the endpoint answers HTTP within ``timeout_s``."""
        try:
            self._client.head(self.endpoint + "/", timeout=timeout_s)
        except httpx.TransportError as exc:
            raise HubUnreachable(f"model hub {self.endpoint} is not reachable ({type(exc).__name__})") from exc

    def resolve_url(self, remote: RemoteFile) -> str:
        return (
            f"{self.endpoint}/{remote.repo}/resolve/{quote(remote.revision, safe='')}/"
            f"{quote(remote.path, safe='/')}"
        )

    def list_files(self, repo: str, revision: str = "main") -> list[str] | None:
        """Every file path in the repository, or None when the listing API is unavailable."""
        url: str | None = f"{self.endpoint}/api/models/{repo}/tree/{quote(revision, safe='')}?recursive=true"
        paths: list[str] = []
        while url:
            try:
                response = self._request("GET", url, follow_redirects=True)
            except RemoteFileMissing:
                return None
            except HubUnreachable:
                raise
            except HubError as exc:
                logger.warning("cannot list %s (%s); using the built-in file list", repo, exc)
                return None
            try:
                entries = response.json()
                paths.extend(entry["path"] for entry in entries if entry.get("type") == "file")
            except (ValueError, TypeError, KeyError, AttributeError):
                logger.warning("unexpected listing for %s; using the built-in file list", repo)
                return None
            next_link = response.links.get("next", {}).get("url")
            url = urljoin(url, next_link) if next_link else None
        return paths

    def metadata(self, remote: RemoteFile) -> RemoteMetadata:
        """Size and sha256 of one file, read from the first response that carries them."""
        url = self.resolve_url(remote)
        current = url
        for _ in range(6):
            response = self._request("HEAD", current, label=remote.label)
            linked_size = _int_header(response.headers, "X-Linked-Size")
            if response.is_redirect and linked_size is None:
                current = urljoin(current, response.headers["Location"])
                continue
            size = linked_size if linked_size is not None else _int_header(response.headers, "Content-Length")
            etag = response.headers.get("X-Linked-Etag") or response.headers.get("ETag")
            return RemoteMetadata(url=url, size=size, sha256=_etag_sha256(etag))
        raise HubError(f"{remote.label}: too many redirects")

    # --- transfer -----------------------------------------------------------------------

    def download(
        self, remote: RemoteFile, meta: RemoteMetadata, *, progress: ProgressFactory | None = None
    ) -> int:
        """Fetch ``remote`` into its destination (resuming a ``.part``); return the bytes transferred."""
        remote.destination.parent.mkdir(parents=True, exist_ok=True)
        part = part_path(remote.destination)
        transferred = 0
        for attempt in range(self.retries + 1):
            try:
                transferred += self._transfer(remote, meta, part, progress)
                break
            except (httpx.TransportError, _Retryable) as exc:
                if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout) and attempt == self.retries:
                    raise HubUnreachable(f"{remote.label}: connection lost ({exc})") from exc
                if attempt == self.retries:
                    raise HubError(f"{remote.label}: transfer failed after {attempt + 1} tries ({exc})") from exc
                have = part.stat().st_size if part.exists() else 0
                logger.warning("%s: %s; retrying from byte %d", remote.label, str(exc) or type(exc).__name__, have)
                time.sleep(self.retry_wait_s * 2**attempt)
        self._verify(remote, meta, part)
        os.replace(part, remote.destination)
        return transferred

    def _transfer(
        self, remote: RemoteFile, meta: RemoteMetadata, part: Path, progress: ProgressFactory | None
    ) -> int:
        have = part.stat().st_size if part.exists() else 0
        if meta.size is not None and have > meta.size:
            logger.warning("%s: partial file is larger than the remote file; starting over", remote.label)
            part.unlink()
            have = 0
        if meta.size is not None and have == meta.size:
            return 0
        headers = {"Range": f"bytes={have}-"} if have else {}
        with self._client.stream("GET", meta.url, headers=headers, follow_redirects=True) as response:
            start = self._resume_offset(response, have, remote.label)
            if start is None:
                logger.warning("%s: the server refused to resume; starting over", remote.label)
            else:
                return self._write_body(response, part, start, meta.size, remote.label, progress)
        part.unlink(missing_ok=True)
        return self._transfer(remote, meta, part, progress)

    def _resume_offset(self, response: httpx.Response, have: int, label: str) -> int | None:
        """Where the response body starts in the file; None: the partial file must be dropped."""
        if have and response.status_code == 416:
            return None
        if have and response.status_code == 206:
            match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", ""))
            if match is None or int(match.group(1)) != have:
                raise HubError(f"{label}: the server resumed at the wrong offset (asked for byte {have})")
            return have
        self._raise_for_status(response, label)
        if response.status_code != 200:
            raise HubError(f"{label}: unexpected HTTP {response.status_code}")
        return 0  # a whole body: a server that ignores Range restarts the file

    @staticmethod
    def _write_body(
        response: httpx.Response,
        part: Path,
        start: int,
        size: int | None,
        label: str,
        progress: ProgressFactory | None,
    ) -> int:
        bar = progress(label, size, start) if progress else None
        written = 0
        ok = False
        try:
            with part.open("ab" if start else "wb") as handle:
                for chunk in response.iter_bytes():  # unbuffered: bytes received before a drop are kept
                    if size is not None and start + written + len(chunk) > size:
                        handle.close()
                        part.unlink(missing_ok=True)
                        raise IntegrityError(f"{label}: size mismatch: the server sent more than {size} bytes")
                    handle.write(chunk)
                    written += len(chunk)
                    if bar is not None:
                        bar.update(len(chunk))
            ok = True
        finally:
            if bar is not None:
                bar.close(ok=ok)
        return written

    def _verify(self, remote: RemoteFile, meta: RemoteMetadata, part: Path) -> None:
        size = part.stat().st_size
        if meta.size is not None and size != meta.size:
            part.unlink()
            raise IntegrityError(f"{remote.label}: size mismatch: got {size} bytes, the hub says {meta.size}")
        if meta.sha256 is not None:
            actual = file_sha256(part)
            if actual != meta.sha256:
                part.unlink()
                raise IntegrityError(f"{remote.label}: sha256 mismatch: got {actual}, the hub says {meta.sha256}")

    # --- plumbing -----------------------------------------------------------------------

    def _request(
        self, method: str, url: str, *, label: str | None = None, follow_redirects: bool = False
    ) -> httpx.Response:
        def once() -> httpx.Response:
            response = self._client.request(method, url, follow_redirects=follow_redirects)
            if response.status_code >= 500:
                raise _Retryable(f"HTTP {response.status_code} from {url}")
            if not response.is_redirect:
                self._raise_for_status(response, label or url)
            return response

        return self._retrying(once, label or url)

    def _retrying(self, call: Callable[[], _T], label: str) -> _T:
        for attempt in range(self.retries + 1):
            try:
                return call()
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                raise HubUnreachable(f"model hub {self.endpoint} is not reachable ({exc})") from exc
            except (httpx.TransportError, _Retryable) as exc:
                if attempt == self.retries:
                    raise HubError(f"{label}: {exc}") from exc
                time.sleep(self.retry_wait_s * 2**attempt)
        raise AssertionError("unreachable")

    @staticmethod
    def _raise_for_status(response: httpx.Response, label: str) -> None:
        status = response.status_code
        if status < 400:
            return
        if status == 404:
            raise RemoteFileMissing(f"{label}: not found on the hub (HTTP 404)")
        if status in (401, 403):
            raise HubError(f"{label}: access denied (HTTP {status}); set HF_TOKEN for gated or private repositories")
        if status >= 500:
            raise _Retryable(f"HTTP {status} for {label}")
        raise HubError(f"{label}: HTTP {status}")
