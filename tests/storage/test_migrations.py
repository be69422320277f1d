"""Migrations: an empty database upgrades to head, again is a no-op, and gateways starting together migrate once."""

from __future__ import annotations

from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from rvc.processing.contract import SynthesisOverrides
from rvc.storage import Database
from rvc.storage.database import MIGRATIONS
from tests.storage.helpers import clip, defaults_store, run_together, voice_store

TABLES = {"alembic_version", "storage_meta", "voices", "stored_defaults", "default_reference", "jobs", "job_sentences"}


def test_an_empty_database_upgrades_to_the_single_head(database_url: str) -> None:
    database = Database(database_url)
    try:
        assert database.current_revision() is None
        assert database.migrate() == Database.head_revision() == "0002"
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
        assert second.migrate() == "0002"
        assert second.migrate() == "0002"
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
        assert revisions == ["0002", "0002"]
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
