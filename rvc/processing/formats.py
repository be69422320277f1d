"""Output audio: speed (a pitch-preserving time stretch), sample rate and every delivered format.

The pipeline produces (T,) float32 mono at the voice's rate (16 kHz without
RVC, the RVC model's rate otherwise). ``OutputSpec`` turns that into what the
client asked for, in this order: time stretch at the source rate (WSOLA,
skipped entirely at speed 1.0 so the samples stay bit-identical), resample
with soxr, encode.

Formats: WAV PCM16 (the seed's default) and WAV float and FLAC through
soundfile; MP3 (LAME), AAC (ADTS), Opus (in Ogg) and FLAC-while-streaming
through PyAV; raw little-endian PCM16 whose rate travels in a header. Codecs
with a fixed set of rates (MP3, AAC, Opus) get the nearest rate at or above
the source when the client names none (40 kHz RVC output becomes 44.1 kHz
MP3), and a 400 naming the allowed rates when the client names another.

``StreamEncoder`` writes one continuous file chunk by chunk, for the
streaming routes: the concatenated chunks are a valid file, and an MP3/AAC/
PCM chunk decodes on its own (MP3 is encoded without LAME's bit reservoir,
every chunk holds whole frames). MP3 uses LAME's quality level 7 ("fast, ok
quality"): at 64 kb/s mono speech it halves the encoder's CPU time against
the default (about 1.3 % of real time instead of 2.6 % here), which keeps MP3
streaming within 5 % of WAV's total time (bench/bench_formats.py). A streamed WAV declares the maximum length
in its header, as streaming WAV producers do; Ogg pages need the stream's
header pages, so only the whole Opus stream decodes.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import soundfile as sf
import soxr

from rvc.audio import resample
from rvc.errors import InvalidInput
from rvc.processing.contract import RequestOptions, constraints

__all__ = [
    "FORMATS",
    "AudioFormat",
    "FormatInfo",
    "OutputSpec",
    "StreamEncoder",
    "StreamResampler",
    "encode_audio",
    "time_stretch",
]

AudioFormat = Literal["wav", "wav_float", "flac", "opus", "mp3", "aac", "pcm"]

_RATE, _SPEED = (constraints(RequestOptions.model_fields[name]) for name in ("sample_rate", "speed"))
MIN_OUTPUT_RATE, MAX_OUTPUT_RATE = int(_RATE["ge"]), int(_RATE["le"])
MIN_SPEED, MAX_SPEED = float(_SPEED["ge"]), float(_SPEED["le"])
_LOSSY_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)


@dataclass(frozen=True)
class FormatInfo:
    """How one format is encoded: its media type, PyAV container/codec (None: soundfile or raw)."""

    name: str
    media_type: str
    extension: str
    container: str | None = None
    codec: str | None = None
    bit_rate: int = 0
    rates: tuple[int, ...] | None = None  # None: any rate
    codec_options: tuple[tuple[str, str], ...] = ()
    container_options: tuple[tuple[str, str], ...] = ()


FORMATS: dict[str, FormatInfo] = {
    "wav": FormatInfo("wav", "audio/wav", "wav"),
    "wav_float": FormatInfo("wav_float", "audio/wav", "wav"),
    "flac": FormatInfo("flac", "audio/flac", "flac", container="flac", codec="flac"),
    "opus": FormatInfo(
        "opus", "audio/ogg", "opus", container="ogg", codec="libopus", bit_rate=32000,
        rates=(8000, 12000, 16000, 24000, 48000), container_options=(("page_duration", "20000"),),
    ),
    "mp3": FormatInfo(
        "mp3", "audio/mpeg", "mp3", container="mp3", codec="libmp3lame", bit_rate=64000, rates=_LOSSY_RATES,
        codec_options=(("reservoir", "0"), ("compression_level", "7")),
    ),
    "aac": FormatInfo("aac", "audio/aac", "aac", container="adts", codec="aac", bit_rate=64000, rates=_LOSSY_RATES),
    "pcm": FormatInfo("pcm", "audio/pcm", "pcm"),
}
assert set(FORMATS) == set(get_args(AudioFormat))


def time_stretch(wav: np.ndarray, sample_rate: int, speed: float) -> np.ndarray:
    """Play (T,) float32 audio ``speed`` times faster without changing its pitch (WSOLA).

    Waveform-similarity overlap-add: 30 ms Hann frames are laid down every
    15 ms of output, each read from the input near ``speed`` times that
    position, shifted by up to 7.5 ms to the offset whose waveform best
    continues the previous frame (cross-correlation), so voiced speech keeps
    its periods intact. Chosen over a phase vocoder because it has no
    phasiness on speech and needs nothing beyond numpy (librosa's first call
    compiles for tens of seconds). Speed 1.0 returns the input itself.
    Output length: round(T / speed).
    """
    if not MIN_SPEED <= speed <= MAX_SPEED:
        raise InvalidInput(f"speed must be within {MIN_SPEED}..{MAX_SPEED}, got {speed}", field="speed")
    if speed == 1.0 or wav.size == 0:
        return wav
    frame = max(16, int(round(sample_rate * 0.030)) // 2 * 2)
    hop = frame // 2
    tolerance = hop // 2
    target = int(round(wav.size / speed))
    count = target // hop + 2
    reach = int(round(count * hop * speed)) + frame + 2 * tolerance + hop
    padded = np.zeros(tolerance + max(reach, wav.size) + frame, dtype=np.float32)
    padded[tolerance : tolerance + wav.size] = wav
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(frame) / frame)).astype(np.float32)  # periodic Hann
    out = np.zeros(count * hop + frame, dtype=np.float32)
    weight = np.zeros_like(out)
    previous = tolerance
    for index in range(count):
        nominal = int(round(index * hop * speed)) + tolerance
        if index == 0:
            start = nominal
        else:
            template = padded[previous + hop : previous + hop + frame]
            region = padded[nominal - tolerance : nominal + tolerance + frame]
            start = nominal - tolerance + int(np.argmax(np.correlate(region, template, mode="valid")))
        out[index * hop : index * hop + frame] += padded[start : start + frame] * window
        weight[index * hop : index * hop + frame] += window
        previous = start
    covered = weight > 1e-6
    out[covered] /= weight[covered]
    return out[:target]


def _choose_rate(info: FormatInfo, source_rate: int, requested: int | None) -> int:
    if requested is not None:
        if not MIN_OUTPUT_RATE <= requested <= MAX_OUTPUT_RATE:
            raise InvalidInput(
                f"sample_rate must be within {MIN_OUTPUT_RATE}..{MAX_OUTPUT_RATE} Hz, got {requested}",
                field="sample_rate",
            )
        if info.rates is not None and requested not in info.rates:
            allowed = ", ".join(str(rate) for rate in info.rates)
            raise InvalidInput(
                f"{info.name} cannot carry {requested} Hz; pick one of {allowed} or leave sample_rate out",
                field="sample_rate",
            )
        return requested
    if info.rates is None or source_rate in info.rates:
        return source_rate
    return next((rate for rate in info.rates if rate >= source_rate), info.rates[-1])


@dataclass(frozen=True)
class OutputSpec:
    """What the client asked the audio to become; validated here so every route shares the rules."""

    format: AudioFormat = "wav"
    sample_rate: int | None = None  # None: the source rate (or the codec's nearest)
    speed: float = 1.0

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise InvalidInput(
                f"unknown format {self.format!r}; use one of {', '.join(FORMATS)}", field="format"
            )
        if not MIN_SPEED <= self.speed <= MAX_SPEED:
            raise InvalidInput(f"speed must be within {MIN_SPEED}..{MAX_SPEED}, got {self.speed}", field="speed")
        _choose_rate(self.info, 16000, self.sample_rate)  # a bad explicit rate fails before any work

    @property
    def info(self) -> FormatInfo:
        return FORMATS[self.format]

    def output_rate(self, source_rate: int) -> int:
        return _choose_rate(self.info, source_rate, self.sample_rate)

    def render(self, audio: np.ndarray, source_rate: int) -> tuple[np.ndarray, int]:
        """Stretch then resample (T,) float32 audio; returns (audio, rate) ready for the encoder."""
        stretched = time_stretch(audio, source_rate, self.speed)
        rate = self.output_rate(source_rate)
        return resample(stretched, source_rate, rate), rate

    def encode(self, audio: np.ndarray, source_rate: int) -> tuple[bytes, int]:
        """A complete file of (T,) float32 audio at ``source_rate``; returns (bytes, the file's rate)."""
        rendered, rate = self.render(audio, source_rate)
        return encode_audio(rendered, rate, self.format), rate


def _pcm16(audio: np.ndarray) -> np.ndarray:
    return (np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0) * 32767.0).round().astype("<i2")


def encode_audio(audio: np.ndarray, sample_rate: int, fmt: AudioFormat) -> bytes:
    """(T,) float32 audio already at ``sample_rate`` -> the bytes of one complete file (or raw PCM16)."""
    info = FORMATS[fmt]
    samples = np.asarray(audio, dtype=np.float32).reshape(-1)
    if fmt == "pcm":
        return _pcm16(samples).tobytes()
    if fmt in ("wav", "wav_float", "flac"):
        subtype = "FLOAT" if fmt == "wav_float" else "PCM_16"
        if subtype == "PCM_16":
            samples = np.clip(samples, -1.0, 1.0)
        buffer = io.BytesIO()
        sf.write(buffer, samples, sample_rate, subtype=subtype, format="FLAC" if fmt == "flac" else "WAV")
        return buffer.getvalue()
    buffer = io.BytesIO()  # seekable: the MP3 muxer writes its Xing/LAME header, so decoders trim the padding
    encoder = _PyAVWriter(info, sample_rate, buffer)
    encoder.write(samples)
    encoder.close()
    return buffer.getvalue()


class _Sink:
    """A non-seekable file for PyAV: muxers then write a streamable file and never seek back."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, chunk: bytes) -> int:
        self.data += chunk
        return len(chunk)

    def take(self) -> bytes:
        out = bytes(self.data)
        self.data.clear()
        return out


class _PyAVWriter:
    """One PyAV container + audio stream; ``write`` takes float32 mono at the codec's rate."""

    def __init__(self, info: FormatInfo, sample_rate: int, file: object) -> None:
        import av

        options = dict(info.container_options)
        options["flush_packets"] = "1"  # whole packets reach the sink at once: chunks end on frame boundaries
        self._av = av
        self.rate = sample_rate
        self.container = av.open(file, mode="w", format=info.container, options=options)
        if info.codec is None:
            raise ValueError(f"format {info.name!r} has no PyAV codec")
        stream = self.container.add_stream(info.codec, rate=sample_rate, layout="mono", options=dict(info.codec_options))
        if not isinstance(stream, av.AudioStream):
            raise TypeError(f"PyAV opened a {type(stream).__name__} for codec {info.codec!r}, not an audio stream")
        self.stream = stream
        if info.bit_rate:
            self.stream.bit_rate = info.bit_rate

    def write(self, samples: np.ndarray) -> None:
        if samples.size == 0:
            return
        clipped = np.clip(samples, -1.0, 1.0).astype(np.float32, copy=False)
        frame = self._av.AudioFrame.from_ndarray(clipped[None, :], format="flt", layout="mono")
        frame.sample_rate = self.rate
        for packet in self.stream.encode(frame):
            self.container.mux(packet)

    def close(self) -> None:
        for packet in self.stream.encode(None):
            self.container.mux(packet)
        self.container.close()


def _wav_stream_header(sample_rate: int, *, float_samples: bool) -> bytes:
    """A WAV header whose sizes say "as long as it goes" (0xFFFFFFFF), for a file still being written."""
    unknown = 0xFFFFFFFF
    if float_samples:
        fmt = struct.pack("<HHIIHHH", 3, 1, sample_rate, sample_rate * 4, 4, 32, 0)
    else:
        fmt = struct.pack("<HHIIHH", 1, 1, sample_rate, sample_rate * 2, 2, 16)
    return (
        b"RIFF" + struct.pack("<I", unknown) + b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
        + b"data" + struct.pack("<I", unknown)
    )


class StreamResampler:
    """soxr's streaming resampler for one request's pieces (a pass-through when the rates agree).

    One per request, not per piece: piece boundaries then leave no seam, and the samples that come
    out add up to exactly the length of the whole output, which chunk offsets rely on.
    """

    def __init__(self, source_rate: int, rate: int) -> None:
        self._soxr = (
            soxr.ResampleStream(source_rate, rate, 1, dtype="float32", quality="HQ") if rate != source_rate else None
        )

    def push(self, audio: np.ndarray) -> np.ndarray:
        """(T,) float32 at the source rate -> the (T',) float32 at the output rate that is ready now."""
        return self._resample(np.asarray(audio, dtype=np.float32).reshape(-1), last=False)

    def finish(self) -> np.ndarray:
        """The samples soxr still holds back (its filter's delay)."""
        return self._resample(np.zeros(0, dtype=np.float32), last=True)

    def _resample(self, samples: np.ndarray, *, last: bool) -> np.ndarray:
        if self._soxr is None:
            return samples
        return np.asarray(self._soxr.resample_chunk(samples, last=last), dtype=np.float32).reshape(-1)


class StreamEncoder:
    """Encodes one request's audio piece by piece into one continuous file.

    ``push`` takes (T,) float32 at ``source_rate`` (already time-stretched)
    and returns the bytes that are ready; ``finish`` returns the rest. The
    resampler is soxr's streaming one, so piece boundaries leave no seams.
    """

    def __init__(self, spec: OutputSpec, source_rate: int) -> None:
        self.spec = spec
        self.source_rate = source_rate
        self.rate = spec.output_rate(source_rate)
        self._resampler = StreamResampler(source_rate, self.rate)
        self._started = False
        self._sink: _Sink | None = None
        self._writer: _PyAVWriter | None = None
        if spec.info.codec is not None:
            self._sink = _Sink()
            self._writer = _PyAVWriter(spec.info, self.rate, self._sink)

    def _encode(self, samples: np.ndarray) -> bytes:
        fmt = self.spec.format
        if self._writer is not None and self._sink is not None:
            self._writer.write(samples)
            return self._sink.take()
        head = b""
        if not self._started and fmt in ("wav", "wav_float"):
            head = _wav_stream_header(self.rate, float_samples=fmt == "wav_float")
        self._started = True
        body = samples.astype("<f4").tobytes() if fmt == "wav_float" else _pcm16(samples).tobytes()
        return head + body

    def push(self, audio: np.ndarray) -> bytes:
        return self._encode(self._resampler.push(audio))

    def finish(self) -> bytes:
        tail = self._encode(self._resampler.finish())
        if self._writer is not None and self._sink is not None:
            self._writer.close()
            tail += self._sink.take()
        return tail
