"""Stored defaults and the default reference clip in the database, as the file store kept them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rvc.processing.contract import SynthesisDefaults, SynthesisOverrides
from rvc.storage import Database, Markers
from tests.storage.file_stores import FileDefaultsStore
from tests.storage.helpers import clip, defaults_store


class Refused(SynthesisOverrides):
    """Overrides whose application fails half-way through a write transaction."""

    def apply(self, defaults: SynthesisDefaults) -> SynthesisDefaults:
        raise ValueError("refused")


def test_defaults_start_as_the_models_and_updates_accumulate(database_url: str, tmp_path: Path) -> None:
    database = Database(database_url)
    store, files = defaults_store(database), FileDefaultsStore(tmp_path / "state")
    assert store.get() == SynthesisDefaults()
    for overrides in (SynthesisOverrides(pitch_shift=4, f0_method="pm"), SynthesisOverrides(top_k=3)):
        assert store.update(overrides) == files.update(overrides)
    assert store.get() == files.get() == SynthesisDefaults(pitch_shift=4, f0_method="pm", top_k=3)
    database.close()


def test_a_failing_update_writes_nothing(database_url: str) -> None:
    store = defaults_store(Database(database_url))
    store.update(SynthesisOverrides(pitch_shift=2))
    with pytest.raises(ValueError, match="refused"):
        store.update(Refused(pitch_shift=9))
    assert store.get() == SynthesisDefaults(pitch_shift=2)
    store.database.close()


def test_the_reference_clip_round_trips_at_its_own_rate(database_url: str, tmp_path: Path) -> None:
    store, files = defaults_store(Database(database_url)), FileDefaultsStore(tmp_path / "state")
    assert store.reference() is None and store.clear_reference() is False
    samples = clip(0.3, seed=5)
    stored, expected = store.set_reference(samples, 22050), files.set_reference(samples, 22050)
    read = store.reference()
    assert read is not None
    assert (read.sha256, read.sample_rate, read.stored_at) == (stored.sha256, 22050, stored.stored_at)
    assert read.sha256 == expected.sha256 and read.duration_s == pytest.approx(expected.duration_s)
    np.testing.assert_array_equal(read.wav, samples)
    assert not read.wav.flags.writeable
    store.set_reference(clip(0.1, seed=6), 16000)
    replaced = store.reference()
    assert replaced is not None and replaced.sample_rate == 16000
    assert store.clear_reference() is True and store.reference() is None
    store.database.close()


def test_two_gateways_see_each_others_defaults_reference_and_markers_at_once(database_url: str) -> None:
    first, second = Database(database_url), Database(database_url)
    defaults = [defaults_store(first), defaults_store(second)]
    markers = [Markers(first), Markers(second)]
    assert defaults[1].get() == SynthesisDefaults()  # read before the write: nothing may be cached after it
    defaults[0].update(SynthesisOverrides(protect=0.1))
    assert defaults[1].get().protect == 0.1
    defaults[1].set_reference(clip(seed=7), 16000)
    seen = defaults[0].reference()
    assert seen is not None
    np.testing.assert_array_equal(seen.wav, clip(seed=7))
    assert markers[1].get("default-voice-seeded") is None
    markers[0].set("default-voice-seeded", "yes")
    assert markers[1].get("default-voice-seeded") == "yes"
    defaults[0].clear_reference()
    assert defaults[1].reference() is None
    first.close()
    second.close()
