"""The file stores written by today's code are imported once, whole, and nothing is lost."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from sqlalchemy import event

from rvc.processing.contract import SynthesisOverrides
from rvc.storage import IMPORT_MARKER, SEEDED_MARKER, Database, Markers, import_legacy_files, open_storage
from tests.storage.file_stores import SEEDED_FILE, FileDefaultsStore, FileVoiceStore
from tests.storage.helpers import clip, defaults_store, run_together, voice_store


def write_todays_files(root: Path) -> tuple[FileVoiceStore, FileDefaultsStore]:
    """var/voices and var/state as the file stores write them, plus the seeded marker and one broken folder."""
    voices = FileVoiceStore(root / "voices")
    voices.create("narrator", clip(1.0, seed=1), reference_text="once upon a time",
                  rvc_model="SilverWolf_e300_s6600", defaults=SynthesisOverrides(pitch_shift=-2, top_k=20),
                  description="the storyteller")
    voices.create("default", clip(0.5, seed=2), description="registered at first start")
    voices.update("default", reference_wav=clip(0.7, seed=3), changes={"description": "re-recorded"})
    (root / "voices" / SEEDED_FILE).write_text("default voice registered from a generated clip\n")
    broken = root / "voices" / "broken"
    broken.mkdir()
    (broken / "voice.json").write_text("{not json")
    state = FileDefaultsStore(root / "state")
    state.update(SynthesisOverrides(f0_method="harvest", index_rate=0.4))
    state.set_reference(clip(0.4, seed=4), 24000)
    return voices, state


def files_under(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def test_todays_files_are_imported_exactly_and_left_in_place(database_url: str, tmp_path: Path) -> None:
    files_voices, files_state = write_todays_files(tmp_path / "var")
    before = files_under(tmp_path / "var")
    database = open_storage(database_url, state_dir=tmp_path / "var" / "state", voices_dir=tmp_path / "var" / "voices")
    voices, defaults = voice_store(database), defaults_store(database)
    # timestamps and hashes included; voices from before RVC profiles keep the 2024 one (migration 0002)
    pinned = [record.model_copy(update={"defaults": record.defaults.merged(rvc_profile="2024")})
              for record in files_voices.records()]  # fmt: skip
    assert voices.records() == pinned
    for name in (record.name for record in files_voices.records()):
        np.testing.assert_array_equal(voices.get(name).reference_wav, files_voices.get(name).reference_wav)
    assert voices.names() == ["default", "narrator"]
    assert defaults.get() == files_state.get()
    reference, expected = defaults.reference(), FileDefaultsStore(tmp_path / "var" / "state").reference()
    assert reference is not None and expected is not None
    assert (reference.sha256, reference.sample_rate, reference.stored_at) == (
        expected.sha256, 24000, expected.stored_at)
    np.testing.assert_array_equal(reference.wav, expected.wav)
    markers = Markers(database)
    assert markers.get(SEEDED_MARKER) is not None
    summary = json.loads(markers.get(IMPORT_MARKER) or "{}")
    assert summary["voices"] == ["default", "narrator"] and summary["skipped"][0].startswith("broken:")
    assert files_under(tmp_path / "var") == before  # read, never moved or deleted
    database.close()


def test_the_import_runs_once_and_never_overwrites_the_database(database_url: str, tmp_path: Path) -> None:
    write_todays_files(tmp_path / "var")
    dirs = {"state_dir": tmp_path / "var" / "state", "voices_dir": tmp_path / "var" / "voices"}
    database = open_storage(database_url, **dirs)
    voices = voice_store(database)
    voices.update("narrator", changes={"description": "edited in the database"})
    voices.delete("default")
    database.close()
    again = open_storage(database_url, **dirs)
    assert import_legacy_files(again, **dirs).already_done
    assert voice_store(again).names() == ["narrator"]
    assert voice_store(again).record("narrator").description == "edited in the database"
    again.close()


def test_a_voice_already_in_the_database_keeps_its_version(database_url: str, tmp_path: Path) -> None:
    write_todays_files(tmp_path / "var")
    database = Database(database_url)
    voice_store(database).create("narrator", clip(seed=9), description="saved before the import")
    result = import_legacy_files(database, voices_dir=tmp_path / "var" / "voices", state_dir=None)
    assert result.voices == ("default",) and result.kept_in_database == ("narrator",)
    assert voice_store(database).record("narrator").description == "saved before the import"
    database.close()


def test_an_import_that_fails_half_way_leaves_nothing_and_is_retried(database_url: str, tmp_path: Path) -> None:
    write_todays_files(tmp_path / "var")
    dirs = {"state_dir": tmp_path / "var" / "state", "voices_dir": tmp_path / "var" / "voices"}
    database = Database(database_url)
    database.migrate()
    inserts: list[str] = []

    def fail_on_the_marker(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.lstrip().upper().startswith("INSERT"):
            inserts.append(statement)
            if "storage_meta" in statement and len(inserts) > 3:
                raise RuntimeError("the disk filled up")

    event.listen(database.engine, "before_cursor_execute", fail_on_the_marker)
    with pytest.raises(RuntimeError, match="disk filled"):
        import_legacy_files(database, **dirs)
    event.remove(database.engine, "before_cursor_execute", fail_on_the_marker)
    assert len(inserts) >= 4  # voices, defaults and reference were written before the failure
    assert voice_store(database).names() == [] and defaults_store(database).reference() is None
    assert Markers(database).get(SEEDED_MARKER) is None and Markers(database).get(IMPORT_MARKER) is None
    assert import_legacy_files(database, **dirs).voices == ("default", "narrator")
    database.close()


def _import_and_die_before_commit(url: str, voices_dir: Path, state_dir: Path) -> None:
    """In a child process: run the import and be killed (no cleanup, no rollback) on its last statement."""
    database = Database(url)

    def die(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.lstrip().upper().startswith("INSERT") and "storage_meta" in statement:
            os._exit(137)  # what SIGKILL leaves: the transaction open, the connection dropped

    event.listen(database.engine, "before_cursor_execute", die)
    import_legacy_files(database, voices_dir=voices_dir, state_dir=state_dir)


def test_a_gateway_killed_during_the_import_leaves_nothing_and_blocks_nobody(
    database_url: str, tmp_path: Path
) -> None:
    write_todays_files(tmp_path / "var")
    dirs = {"state_dir": tmp_path / "var" / "state", "voices_dir": tmp_path / "var" / "voices"}
    migrated = Database(database_url)
    migrated.migrate()
    migrated.close()
    child = multiprocessing.get_context("spawn").Process(
        target=_import_and_die_before_commit, args=(database_url, dirs["voices_dir"], dirs["state_dir"])
    )
    child.start()
    child.join(timeout=120)
    assert child.exitcode == 137
    database = Database(database_url)
    assert voice_store(database).names() == [] and defaults_store(database).get().index_rate == 0.75
    assert import_legacy_files(database, **dirs).voices == ("default", "narrator")  # the write lock was freed
    database.close()


def test_two_gateways_starting_together_import_once(database_url: str, tmp_path: Path) -> None:
    write_todays_files(tmp_path / "var")
    dirs = {"state_dir": tmp_path / "var" / "state", "voices_dir": tmp_path / "var" / "voices"}
    databases = [Database(database_url) for _ in range(2)]
    results = []
    errors = run_together([lambda database=database: results.append(import_legacy_files(database, **dirs))
                           for database in databases])
    assert errors == []
    assert sorted(result.already_done for result in results) == [False, True]
    assert voice_store(databases[1]).names() == ["default", "narrator"]
    for database in databases:
        database.close()


def test_a_clip_that_is_not_16_khz_mono_is_skipped_and_kept(database_url: str, tmp_path: Path) -> None:
    voices = FileVoiceStore(tmp_path / "voices")
    record = voices.create("stereo", clip(seed=1))
    clip_path = tmp_path / "voices" / "stereo" / record.reference_file
    sf.write(clip_path, np.stack([clip(seed=1)] * 2, axis=1), 16000, subtype="FLOAT")
    database = Database(database_url)
    result = import_legacy_files(database, voices_dir=tmp_path / "voices", state_dir=None)
    assert result.voices == () and "expected mono at 16000 Hz" in result.skipped[0]
    assert clip_path.is_file()
    database.close()
