"""The supervisor <-> worker messages: typed, immutable, and whole after the pipe's pickling."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import pytest

from rvc.errors import Busy, InvalidInput
from rvc.infer.params import ConversionParams, VoiceInfo
from rvc.infer.stream_config import StreamConfig
from rvc.server import messages
from rvc.server.messages import (
    BlockConverted,
    CloseStream,
    Command,
    ConvertJob,
    InitFailed,
    JobConverted,
    JobFailed,
    LoadVoice,
    OpenStream,
    Ready,
    Reply,
    Stop,
    StreamBlock,
    StreamClosed,
    StreamFailed,
    UnloadVoice,
    VoiceDone,
)
from rvc.server.voices import VoiceFiles
from rvc.server.wire import ErrorReport

INFO = VoiceInfo("demo", "v2", True, 40000, True, 1, "/w/demo.pth")
BLOCK = StreamBlock("s1", "s1-1", "rvcs1-1i", 4000, "rvcs1-1o", final=False)
EXAMPLES: list[Command | Reply] = [
    ConvertJob("1a", "demo", "rvc1i", 16000, 16000, ConversionParams(pitch_shift=3, seed=2), "rvc1o"),
    LoadVoice(4, VoiceFiles("demo", Path("/w/demo.pth"), None)),
    UnloadVoice(5, "demo"),
    Stop(),
    Ready(pid=123, voices={"demo": INFO}, startup_s=1.5, rss_mb=300.0),
    InitFailed(ErrorReport.from_exception(InvalidInput("no hubert", field="hubert_path"))),
    JobConverted("1a", 40000, 40000, {"total": 0.5}, 310.0),
    JobFailed("1a", ErrorReport.from_exception(RuntimeError("boom")), None),
    VoiceDone(4, "demo", info=INFO),
    OpenStream("s1", "demo", ConversionParams(seed=3), StreamConfig(block=0.1, context=0.5), BLOCK),
    BLOCK,
    CloseStream("s1"),
    BlockConverted("s1", "s1-1", 7600, 40000, {"synthesizer": 0.02}, 300.0),
    StreamFailed("s1", "s1-2", ErrorReport.from_exception(InvalidInput("bad", field="speaker_id")), None),
    StreamClosed("s1"),
]


def test_every_message_kind_has_an_example() -> None:
    kinds = {
        value
        for value in vars(messages).values()
        if isinstance(value, type) and issubclass(value, Command | Reply) and value not in (Command, Reply)
    }
    assert kinds == {type(message) for message in EXAMPLES}


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda message: type(message).__name__)
def test_messages_are_frozen_and_survive_the_pipe(message: Command | Reply) -> None:
    assert dataclasses.is_dataclass(message)
    for field in dataclasses.fields(message):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(message, field.name, None)
    assert pickle.loads(pickle.dumps(message)) == message


def test_error_reports_rebuild_the_project_exception() -> None:
    error = ErrorReport.from_exception(Busy("full", retry_after_s=2.5)).to_exception()
    assert type(error) is Busy and error.retry_after_s == 2.5
    invalid = ErrorReport.from_exception(InvalidInput("bad", field="protect")).to_exception()
    assert type(invalid) is InvalidInput and invalid.field == "protect"
