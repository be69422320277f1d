"""VoiceStore on the storage database (SQLite here): CRUD, restart (a new instance), names, no clobbering."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from rvc.errors import Conflict, InvalidInput, NotFound
from rvc.processing.contract import SynthesisOverrides
from rvc.processing.voices import REFERENCE_RATE, VoiceStore, check_voice_name, demo_reference_clip
from rvc.storage import Database, open_storage


def clip(seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(int(seconds * REFERENCE_RATE))).astype(np.float32)


def only_models(name: str) -> str:
    if name.removesuffix(".pth") != "Known":
        raise NotFound(f"no voice {name!r} in the weights folder (available: Known)", field="voice")
    return "Known"


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    database = open_storage(None, state_dir=tmp_path / "state", voices_dir=None)
    yield database
    database.close()


@pytest.fixture
def store(database: Database) -> VoiceStore:
    return VoiceStore(database, check_model=only_models)


def test_create_get_list_and_the_clip_survive_a_new_store_instance(store: VoiceStore, tmp_path: Path) -> None:
    reference = clip()
    record = store.create(
        "narrator", reference, reference_text="hello", rvc_model="Known.pth",
        defaults=SynthesisOverrides(pitch_shift=3, f0_method="pm"), description="calm",
    )
    assert record.rvc_model == "Known" and record.reference_seconds == 1.0
    reopened = VoiceStore(open_storage(None, state_dir=tmp_path / "state", voices_dir=None))
    assert reopened.names() == ["narrator"]
    saved = reopened.get("narrator")
    np.testing.assert_array_equal(saved.reference_wav, reference)  # float32 samples: bit-exact
    assert not saved.reference_wav.flags.writeable
    assert saved.record == record
    overrides = saved.overrides()
    assert overrides.pitch_shift == 3 and overrides.f0_method == "pm" and overrides.reference_text == "hello"


def test_no_clobbering_without_overwrite(store: VoiceStore) -> None:
    first = store.create("a", clip(seed=1))
    with pytest.raises(Conflict, match="overwrite"):
        store.create("a", clip(seed=2))
    second = store.create("a", clip(seed=2), overwrite=True)
    assert second.reference_sha256 != first.reference_sha256
    assert second.created_at == first.created_at and second.updated_at >= first.updated_at
    np.testing.assert_array_equal(store.get("a").reference_wav, clip(seed=2))  # the new clip, never the old one


def test_update_merges_defaults_and_changes_only_what_is_given(store: VoiceStore) -> None:
    store.create("v", clip(), defaults=SynthesisOverrides(pitch_shift=2, protect=0.2))
    updated = store.update("v", changes={"description": "new"}, defaults=SynthesisOverrides(protect=0.4))
    assert updated.defaults.pitch_shift == 2 and updated.defaults.protect == 0.4 and updated.description == "new"
    reclipped = store.update("v", reference_wav=clip(2.0, seed=5))
    assert reclipped.reference_seconds == 2.0 and reclipped.defaults == updated.defaults
    with pytest.raises(InvalidInput, match="cannot change"):
        store.update("v", changes={"name": "w"})


def test_delete_forgets_the_voice_and_its_clip(store: VoiceStore) -> None:
    store.create("gone", clip())
    store.delete("gone")
    assert store.names() == [] and store.records() == []
    with pytest.raises(NotFound, match="gone"):
        store.delete("gone")
    with pytest.raises(NotFound, match="saved voices"):
        store.record("gone")
    assert store.find("gone") is None


@pytest.mark.parametrize("name", ["", ".", "..", "../x", "a/b", ".hidden", "a" * 65, "space name", "é"])
def test_unsafe_names_are_refused(store: VoiceStore, name: str) -> None:
    with pytest.raises(InvalidInput, match="invalid voice name"):
        store.create(name, clip())
    with pytest.raises(InvalidInput):
        check_voice_name(name)
    assert store.names() == []


def test_unknown_rvc_model_is_a_400_on_the_rvc_model_field(store: VoiceStore) -> None:
    with pytest.raises(InvalidInput, match="Known") as caught:
        store.create("x", clip(), rvc_model="Missing")
    assert caught.value.field == "rvc_model"
    assert store.names() == []


def test_a_transcript_never_hides_in_the_defaults(store: VoiceStore) -> None:
    record = store.create("t", clip(), reference_text="real", defaults=SynthesisOverrides(reference_text="stray"))
    assert record.defaults.reference_text is None and record.reference_text == "real"


def test_the_openapi_pattern_is_the_storage_rule() -> None:
    """One rule: the pattern the API publishes accepts exactly the names storage accepts."""
    import re

    from rvc.api.forms import VOICE_NAME_SCHEMA
    from rvc.storage import is_voice_name

    pattern = re.compile(VOICE_NAME_SCHEMA["pattern"])
    for name in ["a", "a.b", "-x", "_", "A" * 64, "", ".", "..", ".h", "a/b", "a" * 65, "é", "a b", "a\n"]:
        assert (pattern.fullmatch(name) is not None) == is_voice_name(name), name


def test_demo_clip_is_deterministic_speech_like_audio() -> None:
    first, second = demo_reference_clip(), demo_reference_clip()
    np.testing.assert_array_equal(first, second)
    assert first.dtype == np.float32 and first.size == 3 * REFERENCE_RATE
    assert 0.05 < float(np.sqrt(np.mean(first**2))) and np.abs(first).max() <= 0.3 + 1e-6
