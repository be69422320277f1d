"""Output shaping without a server: every format round-trips, streams seamlessly, and speed keeps pitch."""

from __future__ import annotations

import io
import wave

import numpy as np
import pytest

from rvc.api.formats import negotiate_format
from rvc.audio import encode_wav
from rvc.errors import InvalidInput
from rvc.processing.formats import FORMATS, OutputSpec, StreamEncoder, encode_audio, time_stretch
from tests.api_openai.audio_checks import DURATION_SLACK_S, decode_any, decode_pyav, dominant_frequency, sine

SOURCE_RATE = 40000  # the demo RVC voice's rate: not an MP3/AAC/Opus rate, so those must pick one
EXPECTED_RATE = {"mp3": 44100, "aac": 44100, "opus": 48000}


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_every_format_decodes_to_the_same_duration_and_expected_rate(fmt: str) -> None:
    audio = sine(1.5, SOURCE_RATE)
    body, rate = OutputSpec(fmt).encode(audio, SOURCE_RATE)
    assert rate == EXPECTED_RATE.get(fmt, SOURCE_RATE)
    decoded, decoded_rate = decode_any(body, fmt, pcm_rate=rate)
    assert decoded_rate == rate
    assert abs(decoded.size / decoded_rate - 1.5) <= DURATION_SLACK_S.get(fmt, 1e-4)
    assert np.isfinite(decoded).all() and 0.2 < np.abs(decoded).max() <= 1.0


def test_default_wav_is_byte_identical_to_the_seed_encoder() -> None:
    audio = sine(0.5, SOURCE_RATE) * 4  # clipped the same way
    body, _ = OutputSpec().encode(audio, SOURCE_RATE)
    assert body == encode_wav(audio, SOURCE_RATE)


def test_wav_float_keeps_samples_exactly() -> None:
    audio = sine(0.3, 16000)
    decoded, _ = decode_any(encode_audio(audio, 16000, "wav_float"), "wav_float")
    np.testing.assert_array_equal(decoded, audio)


@pytest.mark.parametrize("rate", [8000, 22050, 48000])
def test_sample_rate_resamples_with_soxr_and_keeps_duration(rate: int) -> None:
    body, out_rate = OutputSpec("flac", sample_rate=rate).encode(sine(1.0, SOURCE_RATE), SOURCE_RATE)
    decoded, decoded_rate = decode_any(body, "flac")
    assert out_rate == decoded_rate == rate and decoded.size == rate
    assert abs(dominant_frequency(decoded, rate) - 220.0) < 2.0


def test_codec_rates_are_checked_before_any_work() -> None:
    with pytest.raises(InvalidInput, match="44100") as caught:
        OutputSpec("mp3", sample_rate=40000)
    assert caught.value.field == "sample_rate"
    with pytest.raises(InvalidInput, match="8000"):
        OutputSpec("wav", sample_rate=4000)
    with pytest.raises(InvalidInput, match="unknown format"):
        OutputSpec("mp4")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="speed"):
        OutputSpec(speed=4.5)


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_stream_encoder_chunks_concatenate_into_one_valid_file(fmt: str) -> None:
    pieces = [sine(0.7, SOURCE_RATE, 200.0), sine(0.4, SOURCE_RATE, 300.0), sine(0.9, SOURCE_RATE, 250.0)]
    encoder = StreamEncoder(OutputSpec(fmt), SOURCE_RATE)
    chunks = [encoder.push(piece) for piece in pieces]
    chunks.append(encoder.finish())
    assert all(chunks[:1]) or fmt == "opus"  # Ogg may hold its first page until 20 ms of packets exist
    decoded, rate = decode_any(b"".join(chunks), fmt, pcm_rate=encoder.rate, streamed=True)
    assert rate == encoder.rate
    assert abs(decoded.size / rate - 2.0) <= DURATION_SLACK_S.get(fmt, 1e-3)


@pytest.mark.parametrize(("fmt", "container"), [("mp3", "mp3"), ("aac", "aac")])
def test_each_streamed_mp3_and_aac_chunk_decodes_on_its_own(fmt: str, container: str) -> None:
    encoder = StreamEncoder(OutputSpec(fmt), SOURCE_RATE)
    chunks = [encoder.push(sine(0.6, SOURCE_RATE)) for _ in range(3)] + [encoder.finish()]
    for chunk in chunks[:3]:
        decoded, rate = decode_pyav(chunk, container)
        assert rate == 44100 and decoded.size > 0.4 * rate


def test_streamed_wav_header_declares_an_open_length_that_readers_accept() -> None:
    encoder = StreamEncoder(OutputSpec("wav"), 16000)
    body = encoder.push(sine(0.5, 16000)) + encoder.push(sine(0.5, 16000)) + encoder.finish()
    with wave.open(io.BytesIO(body)) as reader:
        assert reader.getframerate() == 16000 and reader.getsampwidth() == 2
    decoded, _ = decode_any(body, "wav")
    assert decoded.size == 16000


def test_streamed_resampling_has_no_seams() -> None:
    """Chunked soxr equals one-shot soxr up to filter edge effects far below audibility."""
    audio = sine(1.2, SOURCE_RATE)
    encoder = StreamEncoder(OutputSpec("wav_float", sample_rate=24000), SOURCE_RATE)
    body = b"".join([encoder.push(part) for part in np.array_split(audio, 4)] + [encoder.finish()])
    streamed, _ = decode_any(body, "wav_float")
    whole, _ = decode_any(OutputSpec("wav_float", sample_rate=24000).encode(audio, SOURCE_RATE)[0], "wav_float")
    assert streamed.size == whole.size
    np.testing.assert_allclose(streamed[100:-100], whole[100:-100], atol=1e-4)


def test_speed_one_is_the_identical_array() -> None:
    audio = sine(0.5, SOURCE_RATE)
    assert time_stretch(audio, SOURCE_RATE, 1.0) is audio
    rendered, _ = OutputSpec("wav").render(audio, SOURCE_RATE)
    assert rendered is audio


@pytest.mark.parametrize("speed", [0.25, 0.5, 1.5, 2.0, 4.0])
def test_speed_changes_duration_and_keeps_pitch(speed: float) -> None:
    audio = sine(2.0, SOURCE_RATE, 180.0)
    stretched = time_stretch(audio, SOURCE_RATE, speed)
    assert stretched.size == round(audio.size / speed) and stretched.dtype == np.float32
    middle = stretched[stretched.size // 4 : 3 * stretched.size // 4]
    assert abs(dominant_frequency(middle, SOURCE_RATE) - 180.0) < 3.0
    assert 0.25 < np.abs(middle).max() < 0.35  # overlap-add keeps the level


def test_time_stretch_is_deterministic() -> None:
    audio = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    np.testing.assert_array_equal(time_stretch(audio, 16000, 1.3), time_stretch(audio, 16000, 1.3))


@pytest.mark.parametrize(
    ("explicit", "accept", "expected"),
    [
        (None, None, "wav"),
        (None, "*/*", "wav"),
        (None, "audio/mpeg", "mp3"),
        (None, "audio/ogg;q=0.5, audio/flac;q=0.9", "flac"),
        (None, "application/json", "wav"),
        ("opus", "audio/mpeg", "opus"),
        ("OGG", None, "opus"),
        ("pcm", None, "pcm"),
    ],
)
def test_format_field_beats_accept_which_beats_the_default(explicit: str | None, accept: str | None,
                                                         expected: str) -> None:
    assert negotiate_format(explicit, accept) == expected


def test_unknown_format_names_the_choices() -> None:
    with pytest.raises(InvalidInput, match="mp3") as caught:
        negotiate_format("wma", None)
    assert caught.value.field == "format"
