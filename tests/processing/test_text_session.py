"""TextSession and the WebSocket's message parsing, and ChunkRenderer's accounting (pure code, no servers)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from rvc.processing.chunk_output import ChunkRenderer
from rvc.processing.chunk_pipeline import ChunkAudio
from rvc.processing.formats import OutputSpec
from rvc.processing.text_session import (
    AppendMessage,
    CloseMessage,
    SessionError,
    StartMessage,
    TextSession,
    parse_message,
)


def drain(session: TextSession) -> list[str]:
    async def collect() -> list[str]:
        return [sentence async for sentence in session.sentences()]

    return asyncio.run(collect())


def test_deltas_are_cut_into_sentences_once_the_next_one_begins() -> None:
    session = TextSession(max_buffered_chars=1000)
    for delta in ("Hello wor", "ld. Dr. Smith is ", "here! And", "  then"):
        session.append(delta)
    assert session.cut == 2  # "And then" waits for more text
    session.close()
    assert drain(session) == ["Hello world.", "Dr. Smith is here!", "And then"]


def test_flush_speaks_an_unfinished_sentence() -> None:
    session = TextSession(max_buffered_chars=1000)
    session.append("no full stop yet")
    session.flush()
    session.close()
    assert drain(session) == ["no full stop yet"]


def test_limits_and_append_after_close() -> None:
    session = TextSession(max_buffered_chars=10)
    with pytest.raises(SessionError) as over:
        session.append("x" * 11)
    assert over.value.code == "buffer_full" and over.value.close_code == 1008
    session.close()
    with pytest.raises(SessionError, match="append after close"):
        session.append("more")


def test_messages_parse_into_types_and_bad_ones_name_the_problem() -> None:
    assert parse_message('{"type": "append", "text": "hi"}', max_bytes=100) == AppendMessage("hi")
    assert parse_message('{"type": "close"}', max_bytes=100) == CloseMessage()
    start = parse_message('{"type": "start", "voice": "v", "pitch_shift": 3, "seed": 2}', max_bytes=1000)
    assert isinstance(start, StartMessage) and start.tunables == {"pitch_shift": 3} and start.seed == 2
    for raw, code in (('{"type": "x"}', "unknown_type"), ("{", "invalid_json"), ("[1]", "invalid_message"),
                      ('{"type": "append", "text": "' + "a" * 200 + '"}', "message_too_large"),
                      ('{"type": "start", "top_k": "3"}', "invalid_input")):
        with pytest.raises(SessionError) as bad:
            parse_message(raw, max_bytes=100)
        assert bad.value.code == code


@pytest.mark.parametrize(("fmt", "rate"), [("pcm", None), ("pcm", 24000), ("wav", 22050), ("mp3", None)])
def test_rendered_chunks_count_every_output_sample(fmt: str, rate: int | None) -> None:
    rng = np.random.default_rng(0)
    pieces = [rng.standard_normal(size).astype(np.float32) * 0.1 for size in (4480, 8000, 8000, 1600)]
    renderer = ChunkRenderer(OutputSpec(fmt, rate), 16000)  # type: ignore[arg-type]
    rendered = []
    offset = 0
    for index, piece in enumerate(pieces):
        chunk = ChunkAudio(index, 0, offset, piece, 16000, 0.0, 0.0, 0.0)
        offset += piece.size
        if (out := renderer.render(chunk)) is not None:
            rendered.append(out)
    if (last := renderer.finish()) is not None:
        rendered.append(last)
    total = sum(chunk.samples for chunk in rendered)
    expected = round(offset * renderer.rate / 16000)
    assert abs(total - expected) <= 1 and renderer.samples == total
    assert [chunk.index for chunk in rendered] == list(range(len(rendered)))
    assert [chunk.sample_offset for chunk in rendered] == np.cumsum([0] + [c.samples for c in rendered])[:-1].tolist()
    if fmt == "pcm":
        assert all(len(chunk.body) == 2 * chunk.samples for chunk in rendered)
