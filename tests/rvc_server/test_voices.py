"""Voice names are checked against the weights folder; indexes are found beside the .pth."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rvc.errors import InvalidInput, NotFound
from rvc.server.voices import find_index, list_voices, resolve_voice, voice_stem


@pytest.fixture
def weights(tmp_path: Path) -> Path:
    folder = tmp_path / "weights"
    folder.mkdir()
    for name in ("SilverWolf_e300_s6600.pth", "Other.pth", "Other.index", "notes.txt"):
        (folder / name).write_bytes(b"x")
    return folder


def test_name_with_or_without_pth_resolves_to_the_same_files(weights: Path) -> None:
    a = resolve_voice(weights, "Other")
    b = resolve_voice(weights, "Other.pth")
    assert a == b
    assert a.name == "Other" and a.pth == (weights / "Other.pth").resolve()
    assert a.index == (weights / "Other.index").resolve()


@pytest.mark.parametrize(
    "name", ["../Other", "a/b", "/etc/passwd", ".hidden", "..", "", "x y", "é", "a\x00b", "x" * 300]
)
def test_unsafe_names_are_invalid_input(weights: Path, name: str) -> None:
    with pytest.raises(InvalidInput) as info:
        resolve_voice(weights, name)
    assert info.value.field == "voice"


def test_non_string_name_is_invalid_input() -> None:
    with pytest.raises(InvalidInput):
        voice_stem(123)  # type: ignore[arg-type]


def test_missing_voice_is_not_found_and_lists_what_exists(weights: Path) -> None:
    with pytest.raises(NotFound, match="Other, SilverWolf_e300_s6600"):
        resolve_voice(weights, "Nobody")


def test_symlink_leaving_the_folder_is_refused(weights: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.pth"
    outside.write_bytes(b"x")
    os.symlink(outside, weights / "Escape.pth")
    with pytest.raises(InvalidInput, match="outside"):
        resolve_voice(weights, "Escape")


def test_rvc_training_index_name_is_found_from_the_experiment_name(weights: Path) -> None:
    index = weights / "added_IVF256_Flat_nprobe_1_SilverWolf_v2.index"
    index.write_bytes(b"x")
    assert find_index(weights, "SilverWolf_e300_s6600") == index.resolve()
    assert resolve_voice(weights, "SilverWolf_e300_s6600").index == index.resolve()


def test_index_containing_the_full_stem_is_found(weights: Path) -> None:
    index = weights / "added_IVF10_Flat_nprobe_1_Other2_v2.index"
    (weights / "Other2.pth").write_bytes(b"x")
    index.write_bytes(b"x")
    assert find_index(weights, "Other2") == index.resolve()


def test_exact_index_wins_and_no_index_is_none(weights: Path) -> None:
    (weights / "added_IVF1_Flat_nprobe_1_Other_v2.index").write_bytes(b"x")
    assert find_index(weights, "Other") == (weights / "Other.index").resolve()
    assert find_index(weights, "Missing") is None


def test_list_voices_is_sorted_and_skips_other_files(weights: Path) -> None:
    assert list_voices(weights) == ["Other", "SilverWolf_e300_s6600"]
    assert list_voices(weights / "absent") == []
