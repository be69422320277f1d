"""Shared-memory transport: round trips, cleanup by name, no leftovers."""

from __future__ import annotations

import multiprocessing
import secrets
from collections.abc import Iterator

import numpy as np
import pytest

from rvc.server.shm import (
    input_segment_name,
    list_segments,
    output_segment_name,
    read_audio,
    unlink_segment,
    write_audio,
)


@pytest.fixture
def prefix() -> Iterator[str]:
    prefix = f"rvctest{secrets.token_hex(3)}_"
    yield prefix
    for name in list_segments(prefix):
        unlink_segment(name)


def _copy_in_child(source: str, target: str, size: int) -> None:
    audio = read_audio(source, size)
    write_audio(target, audio * 2.0)


def test_write_then_read_returns_identical_float32_copy(prefix: str) -> None:
    audio = np.random.default_rng(0).standard_normal(12345).astype(np.float32)
    name = write_audio(input_segment_name(prefix, "1"), audio)
    assert name == f"{prefix}1i"
    assert list_segments(prefix) == [name]
    back = read_audio(name, audio.size)
    assert back.dtype == np.float32 and back.shape == audio.shape
    np.testing.assert_array_equal(back, audio)
    assert unlink_segment(name) is True
    assert list_segments(prefix) == []


def test_float64_input_is_stored_as_float32(prefix: str) -> None:
    audio = np.linspace(-1.0, 1.0, 100)
    name = write_audio(input_segment_name(prefix, "2"), audio)
    np.testing.assert_array_equal(read_audio(name, 100), audio.astype(np.float32))
    unlink_segment(name)


def test_empty_audio_uses_no_segment(prefix: str) -> None:
    assert write_audio(input_segment_name(prefix, "3"), np.zeros(0, np.float32)) is None
    assert read_audio(None, 0).shape == (0,)
    assert list_segments(prefix) == []


def test_unlink_of_missing_segment_is_quiet(prefix: str) -> None:
    assert unlink_segment(output_segment_name(prefix, "nope")) is False
    assert unlink_segment(None) is False


def test_reading_more_samples_than_stored_is_refused(prefix: str) -> None:
    name = write_audio(input_segment_name(prefix, "4"), np.ones(10, np.float32))
    with pytest.raises(ValueError, match="fewer than"):
        read_audio(name, 10_000)
    unlink_segment(name)


def test_segment_written_by_a_spawned_process_is_read_and_removed_by_the_parent(prefix: str) -> None:
    audio = np.arange(1000, dtype=np.float32)
    source = write_audio(input_segment_name(prefix, "5"), audio)
    target = output_segment_name(prefix, "5")
    child = multiprocessing.get_context("spawn").Process(
        target=_copy_in_child, args=(source, target, audio.size)
    )
    child.start()
    child.join(60)
    assert child.exitcode == 0
    np.testing.assert_array_equal(read_audio(target, audio.size), audio * 2.0)
    assert unlink_segment(source) and unlink_segment(target)
    assert list_segments(prefix) == []
