"""A fake Hugging Face hub on loopback, for testing the downloader without the network.

It implements the parts of the hub's URL scheme the downloader uses:

* ``HEAD|GET /<owner>/<name>/resolve/<rev>/<path>``: large ("LFS") files answer
  302 to ``/cdn/...`` with ``X-Linked-Size`` and ``X-Linked-Etag`` (sha256), as the
  real hub does; small files are served directly with a git-style ``ETag``;
* ``HEAD|GET /cdn/<owner>/<name>/<path>``: the bytes, with ``Range`` support;
* ``GET /api/models/<owner>/<name>/tree/<rev>?recursive=true``: the file listing,
  paginated through a ``Link: <...>; rel="next"`` header;
* ``HEAD /``: the reachability probe.

Faults are injected per file (``FakeFile``): drop the connection after N bytes on
the first transfers, lie about the size or sha256, ignore ``Range``. Every request
is recorded for assertions.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit


@dataclass
class FakeFile:
    content: bytes
    lfs: bool = True
    drop_after: int | None = None  # close the connection after this many body bytes ...
    drops_left: int = 0  # ... for this many GETs
    advertised_size: int | None = None  # LFS only: lie in X-Linked-Size (None: the truth)
    advertised_sha256: str | None = None  # LFS only: lie in X-Linked-Etag (None: the truth)
    ignore_range: bool = False

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    @property
    def git_oid(self) -> str:
        return hashlib.sha1(b"blob %d\0" % len(self.content) + self.content).hexdigest()


@dataclass
class Recorded:
    method: str
    path: str
    range: str | None


@dataclass
class FakeHub:
    repos: dict[str, dict[str, FakeFile]] = field(default_factory=dict)
    listing: bool = True  # False: the tree API answers 404 (a files-only mirror)
    page_size: int = 1000
    requests: list[Recorded] = field(default_factory=list)
    url: str = ""

    def add(self, repo: str, path: str, content: bytes, **faults: object) -> FakeFile:
        fake = FakeFile(content, **faults)  # type: ignore[arg-type]
        self.repos.setdefault(repo, {})[path] = fake
        return fake

    def lookup(self, repo: str, path: str) -> FakeFile | None:
        return self.repos.get(repo, {}).get(path)

    def gets(self, suffix: str) -> list[Recorded]:
        """Recorded body transfers (GET) whose path ends with ``suffix``."""
        return [r for r in self.requests if r.method == "GET" and r.path.endswith(suffix)]


_RESOLVE = re.compile(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")
_CDN = re.compile(r"^/cdn/([^/]+/[^/]+)/(.+)$")
_TREE = re.compile(r"^/api/models/([^/]+/[^/]+)/tree/([^/]+)$")


def _handler_for(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
            pass

        def do_HEAD(self) -> None:
            self._route(body=False)

        def do_GET(self) -> None:
            self._route(body=True)

        def _route(self, *, body: bool) -> None:
            parts = urlsplit(self.path)
            path = unquote(parts.path)
            hub.requests.append(Recorded(self.command, path, self.headers.get("Range")))
            if path == "/":
                self._reply(200, b"fake hub\n", body=body)
            elif match := _TREE.match(path):
                self._tree(match.group(1), parse_qs(parts.query), body=body)
            elif match := _RESOLVE.match(path):
                self._resolve(match.group(1), match.group(3), body=body)
            elif match := _CDN.match(path):
                fake = hub.lookup(match.group(1), match.group(2))
                if fake is None:
                    self._reply(404, b"no such blob", body=body)
                else:
                    self._serve(fake, body=body, etag=fake.sha256)
            else:
                self._reply(404, b"not found", body=body)

        def _tree(self, repo: str, query: dict[str, list[str]], *, body: bool) -> None:
            files = hub.repos.get(repo)
            if not hub.listing or files is None:
                self._reply(404, b'{"error": "Repository not found"}', body=body)
                return
            entries = [{"type": "directory", "path": "BiCodec", "oid": "0" * 40, "size": 0}]
            for path, fake in sorted(files.items()):
                entry = {"type": "file", "path": path, "size": len(fake.content), "oid": fake.git_oid}
                if fake.lfs:
                    entry["lfs"] = {"oid": fake.sha256, "size": len(fake.content), "pointerSize": 134}
                entries.append(entry)
            start = int(query.get("cursor", ["0"])[0])
            page = entries[start : start + hub.page_size]
            headers = {"Content-Type": "application/json"}
            if start + hub.page_size < len(entries):
                next_url = f"{hub.url}/api/models/{repo}/tree/main?recursive=true&cursor={start + hub.page_size}"
                headers["Link"] = f'<{next_url}>; rel="next"'
            self._reply(200, json.dumps(page).encode(), body=body, headers=headers)

        def _resolve(self, repo: str, path: str, *, body: bool) -> None:
            fake = hub.lookup(repo, path)
            if fake is None:
                self._reply(404, b"Entry not found", body=body, headers={"X-Error-Code": "EntryNotFound"})
                return
            if not fake.lfs:
                self._serve(fake, body=body, etag=fake.git_oid)
                return
            size = fake.advertised_size if fake.advertised_size is not None else len(fake.content)
            sha = fake.advertised_sha256 or fake.sha256
            self.send_response(302)
            self.send_header("Location", f"{hub.url}/cdn/{repo}/{path}")
            self.send_header("X-Linked-Size", str(size))
            self.send_header("X-Linked-Etag", f'"{sha}"')
            self.send_header("ETag", f'"{sha}"')
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _serve(self, fake: FakeFile, *, body: bool, etag: str) -> None:
            content = fake.content
            start = 0
            requested = self.headers.get("Range")
            if requested and not fake.ignore_range:
                match = re.fullmatch(r"bytes=(\d+)-", requested)
                start = int(match.group(1)) if match else 0
                if start >= len(content):
                    self._reply(416, b"", body=body, headers={"Content-Range": f"bytes */{len(content)}"})
                    return
            chunk = content[start:]
            self.send_response(206 if start else 200)
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(content) - 1}/{len(content)}")
            self.send_header("Content-Length", str(len(chunk)))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("ETag", f'"{etag}"')
            self.end_headers()
            if not body:
                return
            if fake.drop_after is not None and fake.drops_left > 0:
                fake.drops_left -= 1
                self.wfile.write(chunk[: fake.drop_after])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(chunk)

        def _reply(self, status: int, payload: bytes, *, body: bool, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if body:
                self.wfile.write(payload)

    return Handler


@contextmanager
def serve_fake_hub(hub: FakeHub) -> Iterator[FakeHub]:
    """Serve ``hub`` on 127.0.0.1 (free port) in a thread; ``hub.url`` is its endpoint."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(hub))
    server.daemon_threads = True
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
