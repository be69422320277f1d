"""Saved voices in the database behave as the file store did, across gateways, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rvc.errors import Conflict, InvalidInput, NotFound
from rvc.processing.contract import SynthesisOverrides
from rvc.processing.voices import SavedVoice, VoiceRecord
from rvc.processing.voices import check_voice_name as processing_check_voice_name
from rvc.storage import Database, SavedVoiceStore, check_voice_name
from tests.storage.file_stores import FileVoiceStore
from tests.storage.helpers import clip, comparable, run_together, voice_store

BAD_NAMES = ["", ".hidden", "..", "../etc", "a/b", "a\\b", "x" * 65, "naïve", "with space", "nul\0"]
GOOD_NAMES = ["a", "x" * 64, "Silver.Wolf_e300-s6600", "0", "a..b"]


@pytest.fixture
def two_gateways(database_url: str) -> Iterator[tuple[Database, Database]]:
    """Two engines on one database, as two gateway processes would hold them."""
    first, second = Database(database_url), Database(database_url)
    # migrated one after the other: these tests race the stores, not two first-time migrations (on a
    # fresh SQLite file those can meet SQLITE_BUSY at once, busy_timeout notwithstanding; see the note)
    first.prepare()
    second.prepare()
    yield first, second
    first.close()
    second.close()


def test_a_voice_round_trips_with_its_clip_bit_exact(two_gateways: tuple[Database, Database]) -> None:
    store = voice_store(two_gateways[0])
    samples = clip(1.25)
    record = store.create(
        "narrator", samples, reference_text="hello there", rvc_model="SilverWolf_e300_s6600",
        defaults=SynthesisOverrides(pitch_shift=-3, reference_text="dropped"), description="calm",
    )
    saved = store.get("narrator")
    assert isinstance(saved, SavedVoice)
    assert saved.record == record == store.record("narrator")
    assert saved.reference_wav.dtype == np.float32 and not saved.reference_wav.flags.writeable
    np.testing.assert_array_equal(saved.reference_wav, samples)
    assert record.defaults == SynthesisOverrides(pitch_shift=-3)  # the transcript lives in reference_text
    assert saved.overrides() == SynthesisOverrides(pitch_shift=-3, reference_text="hello there")
    assert record.reference_seconds == 1.25 and record.reference_file.startswith("reference-")
    assert store.names() == ["narrator"] and store.records() == [record]


def test_the_same_operations_give_the_same_records_as_the_file_store(
    two_gateways: tuple[Database, Database], tmp_path: Path
) -> None:
    files, database = FileVoiceStore(tmp_path / "voices"), voice_store(two_gateways[0])
    steps: list[Callable[[Any], Any]] = [
        lambda store: store.create("b", clip(seed=1), reference_text="bee", defaults=SynthesisOverrides(top_k=7)),
        lambda store: store.create("a", clip(seed=2), description="first"),
        lambda store: store.create("a", clip(seed=3), rvc_model="other", overwrite=True),
        lambda store: store.update("b", changes={"description": "changed", "rvc_model": None},
                                   defaults=SynthesisOverrides(protect=0.1)),
        lambda store: store.update("a", reference_wav=clip(seed=4)),
        lambda store: store.delete("b"),
    ]
    for step in steps:
        assert comparable(step(files)) == comparable(step(database))
    assert [comparable(r) for r in files.records()] == [comparable(r) for r in database.records()]
    np.testing.assert_array_equal(files.get("a").reference_wav, database.get("a").reference_wav)


def test_create_conflicts_unless_overwrite_and_overwrite_keeps_created_at(
    two_gateways: tuple[Database, Database],
) -> None:
    store = voice_store(two_gateways[0])
    original = store.create("v", clip(seed=1))
    with pytest.raises(Conflict, match="overwrite=true") as caught:
        store.create("v", clip(seed=2))
    assert caught.value.field == "name" and caught.value.status_code == 409
    replaced = store.create("v", clip(seed=2), overwrite=True)
    assert replaced.created_at == original.created_at
    assert replaced.reference_sha256 != original.reference_sha256
    np.testing.assert_array_equal(store.get("v").reference_wav, clip(seed=2))


def test_unknown_voices_are_not_found_with_the_saved_names(two_gateways: tuple[Database, Database]) -> None:
    store = voice_store(two_gateways[0])
    assert store.find("ghost") is None
    with pytest.raises(NotFound, match="none saved yet"):
        store.record("ghost")
    store.create("real", clip())
    for operation in (store.get, store.record, store.delete, lambda name: store.update(name, changes={})):
        with pytest.raises(NotFound, match="saved voices: real"):
            operation("ghost")


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_names_are_refused_by_every_operation(two_gateways: tuple[Database, Database], name: str) -> None:
    store = voice_store(two_gateways[0])
    operations: list[Callable[[], object]] = [
        lambda: store.create(name, clip()), lambda: store.find(name), lambda: store.get(name),
        lambda: store.record(name), lambda: store.update(name, changes={}), lambda: store.delete(name),
    ]
    for operation in operations:
        with pytest.raises(InvalidInput, match="invalid voice name") as caught:
            operation()
        assert caught.value.field == "name"
    assert store.names() == []


def test_the_name_rule_is_the_one_the_request_contract_applies() -> None:
    for name in BAD_NAMES + GOOD_NAMES:
        accepted = [_accepts(check, name) for check in (check_voice_name, processing_check_voice_name)]
        assert accepted[0] == accepted[1] == (name in GOOD_NAMES), name


def _accepts(check: Callable[[str], str], name: str) -> bool:
    try:
        return check(name) == name
    except InvalidInput:
        return False


def test_rvc_models_are_checked_by_the_callers_rule_on_the_rvc_model_field(
    two_gateways: tuple[Database, Database],
) -> None:
    def only_known(name: str) -> str:
        if name.removesuffix(".pth") != "Known":
            raise NotFound(f"no voice {name!r} in the weights folder (available: Known)", field="voice")
        return "Known"

    store = SavedVoiceStore(two_gateways[0], record_type=VoiceRecord, saved_type=SavedVoice, check_model=only_known)
    with pytest.raises(InvalidInput, match="available: Known") as caught:
        store.create("x", clip(), rvc_model="Missing")
    assert caught.value.field == "rvc_model" and store.names() == []
    assert store.create("x", clip(), rvc_model="Known.pth").rvc_model == "Known"
    with pytest.raises(InvalidInput, match="available: Known"):
        store.update("x", changes={"rvc_model": "Missing"})
    assert store.update("x", changes={"rvc_model": None}).rvc_model is None


def test_record_limits_and_clip_checks_are_the_record_models(two_gateways: tuple[Database, Database]) -> None:
    store = voice_store(two_gateways[0])
    with pytest.raises(InvalidInput) as caught:
        store.create("v", clip(), description="x" * 501)
    assert caught.value.field == "description"
    for bad in (np.zeros(0, np.float32), np.zeros((2, 100), np.float32), np.array([np.nan], np.float32)):
        with pytest.raises(InvalidInput, match="non-empty finite mono"):
            store.create("v", bad)
    with pytest.raises(InvalidInput, match="cannot change"):
        store.update("v", changes={"name": "w"})
    assert store.names() == []


def test_a_failing_update_leaves_the_old_voice_whole(two_gateways: tuple[Database, Database]) -> None:
    store = voice_store(two_gateways[0])
    before = store.create("v", clip(seed=1), description="old")
    with pytest.raises(InvalidInput):
        store.update("v", reference_wav=clip(seed=2), changes={"description": "x" * 501})
    after = store.get("v")
    assert after.record == before
    np.testing.assert_array_equal(after.reference_wav, clip(seed=1))


def test_changes_on_one_gateway_are_seen_on_the_other_at_once(two_gateways: tuple[Database, Database]) -> None:
    first, second = (voice_store(database) for database in two_gateways)
    first.create("shared", clip(seed=1), description="from the first")
    assert second.record("shared").description == "from the first"
    np.testing.assert_array_equal(first.get("shared").reference_wav, clip(seed=1))  # now in first's clip cache
    second.update("shared", reference_wav=clip(seed=2), changes={"description": "from the second"})
    seen = first.get("shared")
    assert seen.record.description == "from the second"
    np.testing.assert_array_equal(seen.reference_wav, clip(seed=2))
    second.delete("shared")
    assert first.find("shared") is None and first.names() == []


def test_concurrent_default_merges_from_two_gateways_lose_no_field(
    two_gateways: tuple[Database, Database],
) -> None:
    stores = [voice_store(database) for database in two_gateways]
    stores[0].create("busy", clip())
    changes = [
        SynthesisOverrides(pitch_shift=5), SynthesisOverrides(index_rate=0.5), SynthesisOverrides(protect=0.2),
        SynthesisOverrides(top_k=9), SynthesisOverrides(temperature=1.1), SynthesisOverrides(filter_radius=1),
        SynthesisOverrides(rms_mix_rate=0.9), SynthesisOverrides(top_p=0.5),
    ]
    errors = run_together([
        lambda store=stores[index % 2], change=change: store.update("busy", defaults=change)
        for index, change in enumerate(changes)
    ])
    assert errors == []
    merged = stores[1].record("busy").defaults
    for change in changes:
        for field, value in change.model_dump(exclude_none=True).items():
            assert getattr(merged, field) == value, field


def test_two_gateways_creating_one_name_together_give_one_voice_and_one_conflict(
    two_gateways: tuple[Database, Database],
) -> None:
    stores = [voice_store(database) for database in two_gateways]
    errors = run_together([lambda store=store, seed=seed: store.create("race", clip(seed=seed))
                        for seed, store in enumerate(stores)])
    assert len(errors) == 1 and isinstance(errors[0], Conflict)
    saved = stores[0].get("race")
    assert any(np.array_equal(saved.reference_wav, clip(seed=seed)) for seed in range(2))

