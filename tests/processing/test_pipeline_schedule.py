"""TTSRVCPipeline's schedule: which stage of which sentence may run when.

The backends here are event logs with hand-operated gates, not models: what is pinned is the
order the pipeline starts work in (the real stack's timing is bench/bench_api.py's business,
and tests/api runs the same pipeline against tritonserver and the worker pool).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import pytest

from rvc.grpc.wire import Speaker, VoiceDesign
from rvc.processing.contract import SynthesisDefaults
from rvc.processing.pipeline import SentenceAudio, SynthesisRequest, TTSRVCPipeline

SENTENCES = ("One goes first.", "Two comes next.", "Three follows on.", "Four ends it.")


class GatedBackends:
    """Speech and voice backends whose every call waits for ``open(stage, index)``."""

    def __init__(self) -> None:
        self.log: list[tuple[str, str, int]] = []  # (event, stage, sentence index)
        self.gates: dict[tuple[str, int], asyncio.Event] = {}

    def gate(self, stage: str, index: int) -> asyncio.Event:
        return self.gates.setdefault((stage, index), asyncio.Event())

    def open(self, stage: str, index: int) -> None:
        self.gate(stage, index).set()

    async def _run(self, stage: str, index: int) -> None:
        self.log.append(("start", stage, index))
        try:
            await self.gate(stage, index).wait()
        except asyncio.CancelledError:
            self.log.append(("cancel", stage, index))
            raise
        self.log.append(("end", stage, index))

    async def speak(self, text: str, speaker: Speaker, settings: SynthesisDefaults, *,
                    seed: int | None, max_new_tokens: int) -> np.ndarray:
        index = SENTENCES.index(text)
        await self._run("tts", index)
        return np.full(16000, 0.1 * (index + 1), dtype=np.float32)

    async def convert(self, audio: np.ndarray, sample_rate: int, settings: SynthesisDefaults, *,
                      voice: str | None, seed: int | None) -> tuple[np.ndarray, int]:
        index = round(float(audio[0]) / 0.1) - 1
        await self._run("rvc", index)
        return audio * 2, sample_rate

    def started(self, stage: str) -> list[int]:
        return [index for event, name, index in self.log if event == "start" and name == stage]


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


def request(count: int = 4) -> SynthesisRequest:
    return SynthesisRequest(SENTENCES[:count], Speaker(reference_wav=np.zeros(16000, np.float32)), SynthesisDefaults(),
                            seed=1)


async def open_stream(backends: GatedBackends) -> tuple[AsyncIterator[SentenceAudio], asyncio.Future[SentenceAudio]]:
    """The overlapped pipeline's stream of a 4-sentence request, its first result pending."""
    stream = TTSRVCPipeline(backends, backends, retry_suspect=False, lookahead=3).stream(request())
    first = asyncio.ensure_future(stream.__anext__())
    await settle()
    return stream, first


def test_overlapped_schedule_protects_the_first_sentence_then_overlaps() -> None:
    async def run() -> None:
        backends = GatedBackends()
        stream, first = await open_stream(backends)
        assert backends.started("tts") == [0]  # spoken alone: its audio is what the client waits for
        backends.open("tts", 0)
        await settle()
        assert backends.started("tts") == [0, 1, 2]  # the lookahead, spoken as one wave
        assert backends.started("rvc") == [0]
        backends.open("tts", 1)
        await settle()
        assert backends.started("rvc") == [0]  # until sentence 0 is out it converts alone
        backends.open("rvc", 0)
        result = await first
        assert result.index == 0 and np.allclose(result.audio, 0.2)
        await settle()
        assert backends.started("rvc") == [0, 1]  # now the next one converts beside the TTS
        assert backends.started("tts") == [0, 1, 2]  # sentence 3 waits for the running wave
        backends.open("tts", 2)
        await settle()
        assert backends.started("tts") == [0, 1, 2, 3] and backends.started("rvc") == [0, 1, 2]
        for stage, index in (("rvc", 2), ("rvc", 1), ("tts", 3), ("rvc", 3)):
            backends.open(stage, index)
        rest = [sentence.index async for sentence in stream]
        assert rest == [1, 2, 3]  # in order, though sentence 2 converted first

    asyncio.run(run())


def test_lookahead_one_is_strictly_sequential() -> None:
    async def run() -> None:
        backends = GatedBackends()
        for stage in ("tts", "rvc"):
            for index in range(3):
                backends.open(stage, index)
        pipeline = TTSRVCPipeline(backends, backends, retry_suspect=False, lookahead=1)
        result = await pipeline.synthesize(request(3))
        assert [sentence.index for sentence in result.sentences] == [0, 1, 2]
        assert [(event, stage, index) for event, stage, index in backends.log if event == "start"] == [
            ("start", "tts", 0), ("start", "rvc", 0), ("start", "tts", 1), ("start", "rvc", 1),
            ("start", "tts", 2), ("start", "rvc", 2),
        ]

    asyncio.run(run())


def test_closing_the_stream_cancels_the_work_in_flight() -> None:
    async def run() -> None:
        backends = GatedBackends()
        stream, first = await open_stream(backends)
        backends.open("tts", 0)
        backends.open("rvc", 0)
        assert (await first).index == 0
        await settle()
        await stream.aclose()  # the client went away
        cancelled = sorted((stage, index) for event, stage, index in backends.log if event == "cancel")
        assert cancelled == [("tts", 1), ("tts", 2)]  # the wave that was speaking
        assert 3 not in backends.started("tts")

    asyncio.run(run())


@pytest.mark.parametrize("lookahead", [0, -1])
def test_lookahead_must_be_positive(lookahead: int) -> None:
    with pytest.raises(ValueError, match="lookahead"):
        TTSRVCPipeline(GatedBackends(), GatedBackends(), lookahead=lookahead)


class DesigningBackends:
    """Speech that invents a voice per design call and records who spoke each sentence; RVC unused."""

    def __init__(self) -> None:
        self.spoken: list[tuple[int, Speaker]] = []

    async def design(self, text: str, design: VoiceDesign, settings: SynthesisDefaults, *, seed: int,
                     max_new_tokens: int) -> tuple[np.ndarray, np.ndarray]:
        self.spoken.append((SENTENCES.index(text), Speaker(design=design)))
        return np.full(16000, 0.1, np.float32), np.full(32, seed % 4096, np.int32)

    async def speak(self, text: str, speaker: Speaker, settings: SynthesisDefaults, *,
                    seed: int | None, max_new_tokens: int) -> np.ndarray:
        self.spoken.append((SENTENCES.index(text), speaker))
        return np.full(16000, 0.1, np.float32)

    async def convert(self, audio: np.ndarray, sample_rate: int, settings: SynthesisDefaults, *,
                      voice: str | None, seed: int | None) -> tuple[np.ndarray, int]:
        raise AssertionError("skip_rvc requests never convert")


def test_a_designed_voice_is_designed_once_per_request_and_kept_for_every_sentence() -> None:
    backends = DesigningBackends()
    designed = SynthesisRequest(SENTENCES, Speaker(design=VoiceDesign("male", "low")),
                                SynthesisDefaults(skip_rvc=True), seed=5)
    asyncio.run(TTSRVCPipeline(backends, backends, retry_suspect=False, lookahead=3).synthesize(designed))
    by_index = dict(backends.spoken)
    assert len(backends.spoken) == 4 and by_index[0].design == VoiceDesign("male", "low")
    kept = Speaker(global_tokens=(5,) * 32)
    assert [by_index[index] for index in (1, 2, 3)] == [kept] * 3


def test_a_resumed_stream_starts_at_its_first_sentence_with_the_whole_request_s_indices_and_seeds() -> None:
    class SeedLog(GatedBackends):
        def __init__(self) -> None:
            super().__init__()
            self.seeds: list[int | None] = []

        async def speak(self, text: str, reference_wav: np.ndarray, settings: SynthesisDefaults, *,
                        seed: int | None, max_new_tokens: int) -> np.ndarray:
            self.seeds.append(seed)
            return await super().speak(text, reference_wav, settings, seed=seed, max_new_tokens=max_new_tokens)

    async def run() -> None:
        backends = SeedLog()
        for stage in ("tts", "rvc"):
            for index in range(4):
                backends.open(stage, index)
        stream = TTSRVCPipeline(backends, backends, retry_suspect=False, lookahead=1).stream(request(), first=2)
        assert [sentence.index async for sentence in stream] == [2, 3]
        assert backends.started("tts") == [2, 3] and backends.seeds == [3, 4]  # seed 1 + the sentence's index

    asyncio.run(run())
    with pytest.raises(ValueError, match="first"):
        asyncio.run(TTSRVCPipeline(GatedBackends(), GatedBackends()).stream(request(), first=4).__anext__())
