"""The database being down is StorageUnavailable (503), never another error, and the storage recovers by itself."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from rvc.errors import ConfigError, ModelUnavailable, StorageUnavailable
from rvc.processing.contract import SynthesisOverrides
from rvc.storage import Database, database_url, open_storage
from tests.storage.conftest import PostgresCluster
from tests.storage.helpers import clip, defaults_store, voice_store


def every_operation(database: Database) -> list[Callable[[], object]]:
    voices, defaults = voice_store(database), defaults_store(database)
    return [
        voices.names, voices.records, lambda: voices.record("kept"), lambda: voices.find("kept"),
        lambda: voices.create("new", clip()), lambda: voices.update("kept", changes={"description": "x"}),
        lambda: voices.delete("kept"), defaults.get, lambda: defaults.update(SynthesisOverrides(top_k=2)),
        defaults.reference, lambda: defaults.set_reference(clip(), 16000), defaults.clear_reference,
        database.check,
    ]


def assert_unavailable(database: Database) -> None:
    for operation in every_operation(database):
        with pytest.raises(StorageUnavailable, match="storage database") as caught:
            operation()
        assert isinstance(caught.value, ModelUnavailable) and caught.value.status_code == 503
        assert "127.0.0.1" not in caught.value.message and ".sqlite3" not in caught.value.message  # log only
        assert caught.value.code == "storage_unavailable" and caught.value.retry_after_s > 0


def test_postgres_stopped_gives_503_then_recovers_without_a_new_engine(own_cluster: PostgresCluster) -> None:
    own_cluster.start()
    database = open_storage(own_cluster.url(), state_dir=own_cluster.root, voices_dir=None, connect_timeout_s=2)
    voice_store(database).create("kept", clip(seed=1))
    own_cluster.stop()
    assert_unavailable(database)
    own_cluster.start()
    database.check()
    assert voice_store(database).record("kept").name == "kept"
    defaults_store(database).update(SynthesisOverrides(top_k=4))
    assert defaults_store(database).get().top_k == 4
    database.close()


def test_a_gateway_started_while_postgres_is_down_prepares_when_it_returns(
    own_cluster: PostgresCluster, tmp_path: Path
) -> None:
    database = open_storage(own_cluster.url(), state_dir=tmp_path, voices_dir=None, connect_timeout_s=2)
    assert_unavailable(database)
    own_cluster.start()
    assert voice_store(database).names() == []  # migrated on this first call
    assert database.current_revision() == Database.head_revision()
    database.close()


def test_an_unopenable_sqlite_file_gives_503(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the database's folder should be")
    database = Database(f"sqlite:///{blocker / 'voice-service.sqlite3'}")
    assert_unavailable(database)
    database.close()


def test_default_url_is_sqlite_in_state_dir_and_postgres_urls_use_psycopg(tmp_path: Path) -> None:
    assert database_url(None, state_dir=tmp_path).database == str(tmp_path / "voice-service.sqlite3")
    assert database_url("", state_dir=tmp_path).get_backend_name() == "sqlite"
    for given in ("postgresql://u:p@db:5432/voices", "postgres://u:p@db/voices"):
        assert database_url(given, state_dir=tmp_path).drivername == "postgresql+psycopg"


@pytest.mark.parametrize("bad", ["not a url", "mysql://u@h/db", "oracle://x"])
def test_a_malformed_database_url_is_a_config_error_naming_the_variable(bad: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        database_url(bad, state_dir=tmp_path)
