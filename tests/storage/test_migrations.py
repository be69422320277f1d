"""Migrations: an empty database upgrades to head, again is a no-op, and gateways starting together migrate once."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from rvc.processing.contract import SynthesisOverrides
from rvc.storage import Database
from rvc.storage.database import MIGRATIONS
from tests.storage.helpers import clip, defaults_store, run_together, voice_store

HEAD = "0004"
TABLES = {"alembic_version", "storage_meta", "voices", "stored_defaults", "default_reference", "jobs", "job_sentences"}


def test_an_empty_database_upgrades_to_the_single_head(database_url: str) -> None:
    database = Database(database_url)
    try:
        assert database.current_revision() is None
        assert database.migrate() == Database.head_revision() == HEAD
        assert set(database.read(lambda connection: inspect(connection).get_table_names())) == TABLES
    finally:
        database.close()


def test_migrating_again_changes_nothing_and_keeps_the_data(database_url: str) -> None:
    first = Database(database_url)
    voice_store(first).create("kept", clip())
    defaults_store(first).update(SynthesisOverrides(pitch_shift=3))
    first.close()
    second = Database(database_url)
    try:
        assert second.migrate() == HEAD
        assert second.migrate() == HEAD
        assert voice_store(second).names() == ["kept"]
        assert defaults_store(second).get().pitch_shift == 3
    finally:
        second.close()


def test_two_gateways_starting_together_migrate_once(database_url: str) -> None:
    databases = [Database(database_url) for _ in range(2)]
    revisions: list[str | None] = []
    errors = run_together([lambda database=database: revisions.append(database.migrate()) for database in databases])
    try:
        assert errors == []
        assert revisions == [HEAD, HEAD]
    finally:
        for database in databases:
            database.close()


def test_the_migration_history_is_one_line_from_the_first_revision() -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    script = ScriptDirectory.from_config(config)
    assert len(script.get_heads()) == 1
    revisions = list(script.walk_revisions())
    assert revisions[-1].down_revision is None
    assert all(len(revision.nextrev) <= 1 for revision in revisions)


def test_voices_saved_before_profiles_existed_are_pinned_to_2024(tmp_path) -> None:
    """0002: a voice saved at 0001 keeps its 20240604 sound; a voice saved after it follows RVC_PROFILE."""
    import json

    from alembic import command
    from sqlalchemy import create_engine, text

    url = f"sqlite:///{tmp_path / 'old.db'}"
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    engine = create_engine(url)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
        record = {"name": "old", "description": "", "reference_text": "", "rvc_model": None,
                  "defaults": {"pitch_shift": 2}, "reference_file": "reference.wav", "reference_sha256": "0" * 64,
                  "reference_seconds": 0.5, "created_at": 1.0, "updated_at": 1.0}  # fmt: skip
        connection.execute(text(
            "INSERT INTO voices (name, record, reference_sha256, sample_rate, samples, created_at, updated_at) "
            "VALUES ('old', :record, :sha, 16000, :samples, 1.0, 1.0)"
        ), {"record": json.dumps(record), "sha": "0" * 64, "samples": clip().tobytes()})
    engine.dispose()
    database = Database(url)
    try:
        assert database.migrate() == HEAD
        store = voice_store(database)
        store.create("new", clip())
        old_defaults = store.get("old").record.defaults.given()
        assert old_defaults == {"pitch_shift": 2, "rvc_profile": "2024"}
        assert "rvc_profile" not in store.get("new").record.defaults.given()
    finally:
        database.close()


def test_a_gateway_starting_on_a_fresh_sqlite_file_another_process_is_writing_waits_for_it(tmp_path: Path) -> None:
    """The WAL switch on a fresh file fails at once ("database is locked") while another connection holds
    the write lock, without calling SQLite's busy handler: two gateways starting together on one new file
    lost that race under load. The gateway must wait for the lock as any other statement does."""
    path = tmp_path / "state" / "voice-service.sqlite3"
    path.parent.mkdir()
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    other.execute("CREATE TABLE other_gateway (a)")
    released = threading.Event()

    def release() -> None:
        released.set()  # before the COMMIT: the gateway cannot have got the lock earlier
        other.execute("COMMIT")

    timer = threading.Timer(0.5, release)
    timer.start()
    database = Database(f"sqlite:///{path}")
    try:
        assert database.migrate() == HEAD
        assert released.is_set()  # it waited for the other connection instead of failing
        assert database.read(lambda connection: connection.exec_driver_sql("PRAGMA journal_mode").scalar()) == "wal"
    finally:
        timer.join()
        other.close()
        database.close()
