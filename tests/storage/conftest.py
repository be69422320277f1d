"""Databases for the storage tests: a SQLite file, and a throwaway PostgreSQL cluster.

The cluster is Debian's ``postgresql`` binaries run as the ``postgres`` user
(PostgreSQL refuses root) on a free loopback port, with its data directory
and socket under a fresh temporary folder; the session fixture stops it and
removes the folder. Each test gets its own database in it, so tests share
the server but never data. A test that stops a server gets a cluster of its
own (``own_cluster``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.postgres import PostgresCluster

__all__ = ["PostgresCluster"]


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.remove()


@pytest.fixture
def own_cluster() -> Iterator[PostgresCluster]:
    """A cluster this test may stop and start; nobody else uses it."""
    cluster = PostgresCluster()
    try:
        yield cluster
    finally:
        cluster.remove()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file under tmp_path, or a new database in the session's cluster."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state' / 'voice-service.sqlite3'}"
        return
    cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
    name = cluster.create_database()
    try:
        yield cluster.url(name)
    finally:
        cluster.drop_database(name)
