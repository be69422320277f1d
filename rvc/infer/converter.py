"""The voice converter a worker process holds: shared HuBERT/RMVPE/FCPE, resident voices, ``convert``.

``VoiceConverter.convert`` runs RVC's offline inference (``vc_single``): any-rate mono audio
-> 16 kHz, peak limit, the pipeline in ``pipeline.py``, int16 scaling. The result is the
int16 output as float32 in [-1, 1] at the voice's rate (or ``resample_sr``).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from rvc.audio import resample, validate_waveform
from rvc.device import RVC_EXTRACTOR_DTYPES
from rvc.errors import InvalidInput, NotFound
from rvc.infer.fcpe import FCPE, bundled_weights, locate_weights, missing_weights_message
from rvc.infer.hubert import ContentEncoder
from rvc.infer.index import FeatureIndex
from rvc.infer.params import (
    CREPE_MODELS,
    F0_METHODS,
    MIN_INPUT_SECONDS,
    PRECISIONS,
    ConversionParams,
    ConversionResult,
    VoiceInfo,
)
from rvc.infer.pipeline import CPU_SEGMENTS, SegmentConfig, SegmentModels, Trace, run_pipeline
from rvc.infer.profiles import DEFAULT_PROFILE, InferenceProfile, profile_named
from rvc.infer.rmvpe import RMVPE
from rvc.infer.signal_ops import limit_peak, to_int16
from rvc.infer.synthesizer import VoiceCheckpoint, load_voice_checkpoint

# The value types live in the torch-free rvc.infer.params; they are re-exported here for model-side
# code (benchmarks, parity tests) that already imports them from the converter.
__all__ = [
    "F0_METHODS",
    "PRECISIONS",
    "ConversionParams",
    "ConversionResult",
    "ConverterAssets",
    "VoiceConverter",
    "VoiceInfo",
    "decoder_dtype",
]

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
_WARM_UP_SECONDS = 1.0


@dataclass(frozen=True)
class ConverterAssets:
    """Model files shared by every voice: ``hubert_base.pt`` (fairseq; or a transformers folder), ``rmvpe.pt``.

    FCPE's weights come from ``fcpe_path`` (an operator's copy) when that file exists, else from
    ``fcpe_bundled``, the file in the installed torchfcpe wheel (None: not installed).
    """

    hubert_path: Path
    rmvpe_path: Path | None
    fcpe_path: Path | None = None
    fcpe_bundled: Path | None = field(default_factory=bundled_weights)


@dataclass(frozen=True)
class ResidentVoice:
    info: VoiceInfo
    checkpoint: VoiceCheckpoint
    index: FeatureIndex | None


def _resolve_index_path(path: Path) -> Path:
    """Like the WebUI, read the vectors-bearing ``added_*`` file when given its ``trained_*`` twin."""
    if "trained" in path.name:
        added = path.with_name(path.name.replace("trained", "added"))
        if added.is_file():
            return added
    return path


def decoder_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The waveform decoder's autocast type for ``precision`` (None: float32, exact).

    The decoder is ~90% of a conversion. ``bf16`` runs its convolutions in bfloat16 (its last
    stage's stream and output conv stay float32, ``HiFiGanGenerator.float32_tail``): faster only
    on CPUs with native bf16 (AVX-512 BF16 / AMX; elsewhere torch emulates it, several times
    slower) and not parity, so opt-in; README's ``RVC_PRECISION`` row gives the measured cost.
    ``fp16`` is the reference's half-precision GPU mode and needs CUDA: the decoder under float16
    autocast, HuBERT and RMVPE in float16 (``extractor_dtype``).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("precision 'fp16' needs a CUDA device; use 'bf16' on CPU")
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def extractor_dtype(precision: str) -> torch.dtype:
    """HuBERT's and RMVPE's weights and inputs for ``precision``: float16 in ``fp16``, as the
    reference's half mode loads every model (``.half()``), so the GPU runs them in half too; float32
    in fp32 and bf16 (``rvc.device.RVC_EXTRACTOR_DTYPES``). Both return float32 features."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    dtype: torch.dtype = getattr(torch, RVC_EXTRACTOR_DTYPES[precision])
    return dtype


class VoiceConverter:
    """One per process; HuBERT and RMVPE are loaded once and shared by every resident voice.

    FCPE is loaded on its first use (most deployments never ask for it; ``warm_up`` pays the load
    for a worker whose predecessor used it). Thread-safe: voices are added/removed under a lock,
    FCPE is loaded under another, and conversions only read the models.
    """

    def __init__(
        self,
        assets: ConverterAssets,
        *,
        device: str = "cpu",
        crepe_model: str = "full",
        segments: SegmentConfig = CPU_SEGMENTS,
        precision: str = "fp32",
        profile: str = DEFAULT_PROFILE,
    ) -> None:
        self.profile = profile_named(profile).name  # ValueError now, not at the first job
        if crepe_model not in CREPE_MODELS:
            raise ValueError(f"crepe_model must be one of {CREPE_MODELS}, got {crepe_model!r}")
        self.device = torch.device(device)
        self.decoder_dtype = decoder_dtype(precision, self.device)
        self.precision = precision
        self.crepe_model = crepe_model
        self.segments = segments
        extractors = extractor_dtype(precision)
        hubert_path = Path(assets.hubert_path)
        if hubert_path.is_dir():
            self.hubert = ContentEncoder.from_pretrained(hubert_path, device=self.device, dtype=extractors)
        else:
            self.hubert = ContentEncoder.from_fairseq(hubert_path, device=self.device, dtype=extractors)
        self.rmvpe = (
            RMVPE.from_pretrained(assets.rmvpe_path, device=self.device, dtype=extractors)
            if assets.rmvpe_path else None
        )
        self._fcpe_assets_file = assets.fcpe_path
        self.fcpe_file = locate_weights(assets.fcpe_path, assets.fcpe_bundled)
        self._fcpe: FCPE | None = None
        self._fcpe_lock = threading.Lock()
        self._voices: dict[str, ResidentVoice] = {}
        self._lock = threading.RLock()
        self._methods_used: set[str] = set()

    def fcpe(self) -> FCPE:
        """The FCPE model, loaded on first call; InvalidInput naming both places when no weights exist."""
        with self._fcpe_lock:
            if self._fcpe is None:
                if self.fcpe_file is None:
                    raise InvalidInput(missing_weights_message(self._fcpe_assets_file), field="f0_method")
                self._fcpe = FCPE.from_pretrained(self.fcpe_file, device=self.device)
            return self._fcpe

    # -- voices -----------------------------------------------------------------------------

    def load_voice(self, name: str, pth_path: Path, index_path: Path | None = None) -> VoiceInfo:
        """Load (or replace) voice ``name`` from an official ``.pth`` and optional faiss ``.index``."""
        checkpoint = load_voice_checkpoint(pth_path, device=self.device)
        checkpoint.model.dec.autocast_dtype = self.decoder_dtype
        index = FeatureIndex.load(_resolve_index_path(Path(index_path))) if index_path is not None else None
        info = VoiceInfo(
            name=name,
            version=checkpoint.version,
            if_f0=checkpoint.if_f0,
            sample_rate=checkpoint.sample_rate,
            has_index=index is not None,
            n_speakers=checkpoint.config.spk_embed_dim,
            path=str(pth_path),
        )
        with self._lock:
            self._voices[name] = ResidentVoice(info, checkpoint, index)
        logger.info("voice %s resident (%s, f0=%s, %d Hz, index=%s)", name, info.version, info.if_f0,
                    info.sample_rate, info.has_index)  # fmt: skip
        return info

    def unload_voice(self, name: str) -> None:
        with self._lock:
            if self._voices.pop(name, None) is None:
                raise NotFound(f"voice {name!r} is not loaded", field="voice")

    @property
    def voices(self) -> dict[str, VoiceInfo]:
        with self._lock:
            return {name: voice.info for name, voice in self._voices.items()}

    def resident(self, name: str) -> ResidentVoice:
        """The models of a loaded voice (a stream converts with them block by block); NotFound otherwise."""
        with self._lock:
            voice = self._voices.get(name)
            known = sorted(self._voices)
        if voice is None:
            raise NotFound(f"voice {name!r} is not loaded; loaded voices: {known}", field="voice")
        return voice

    def resident_for(self, name: str, params: ConversionParams) -> ResidentVoice:
        """The resident voice, once ``params`` passed the checks that depend on it and on these assets.

        The request contract checked each value alone; only here is it known whether the voice has
        that speaker and whether rmvpe / fcpe weights exist. Offline conversion and streams check alike.
        """
        resident = self.resident(name)
        if params.speaker_id >= resident.info.n_speakers:
            raise InvalidInput(
                f"speaker_id must be from 0 to {resident.info.n_speakers - 1} for voice {name!r}, "
                f"got {params.speaker_id}",
                field="speaker_id",
            )
        if resident.info.if_f0 and params.f0_method == "rmvpe" and self.rmvpe is None:
            raise InvalidInput(
                "f0_method 'rmvpe' is unavailable: no rmvpe.pt was configured", field="f0_method"
            )
        if resident.info.if_f0 and params.f0_method == "fcpe" and self.fcpe_file is None:
            raise InvalidInput(missing_weights_message(self._fcpe_assets_file), field="f0_method")
        return resident

    # -- conversion -------------------------------------------------------------------------

    def profile_for(self, params: ConversionParams) -> InferenceProfile:
        """The request's profile, or this converter's (RVC_PROFILE) when the request names none."""
        return profile_named(params.rvc_profile, self.profile)

    def warm_up(self, methods: tuple[str, ...] | None = None) -> None:
        """One short conversion per resident voice and per f0 method in use (first-call costs paid here)."""
        if methods is None:
            methods = tuple(sorted(self._methods_used)) or (("rmvpe",) if self.rmvpe is not None else ("pm",))
        t = np.arange(int(_WARM_UP_SECONDS * SAMPLE_RATE)) / SAMPLE_RATE
        tone = (0.3 * np.sin(2 * np.pi * 180.0 * t)).astype(np.float32)
        for position, name in enumerate(self.voices):
            for method in methods if position == 0 else methods[:1]:
                self.convert(name, tone, SAMPLE_RATE, ConversionParams(f0_method=method, deterministic=True))

    def convert(
        self,
        voice: str,
        audio: np.ndarray,
        sample_rate: int,
        params: ConversionParams,
        *,
        trace: Trace | None = None,
    ) -> ConversionResult:
        """(N,) mono float audio at ``sample_rate`` -> the voice's rendition (see ConversionResult).

        ``params`` are trusted: ``RVCServer.submit`` validated them where the job entered the pool
        (a library caller of the converter itself calls ``params.validate()`` first). Only what
        depends on this voice and these assets is checked here: the speaker, rmvpe and fcpe.
        """
        resident = self.resident_for(voice, params)
        wav = np.asarray(audio, dtype=np.float32)
        validate_waveform(wav, sample_rate)
        if wav.size < MIN_INPUT_SECONDS * sample_rate:
            raise InvalidInput(f"audio must be at least {MIN_INPUT_SECONDS:g} s long", field="audio")
        started = time.perf_counter()
        timings: dict[str, float] = {}
        wav16k = limit_peak(resample(wav, sample_rate, SAMPLE_RATE))
        checkpoint = resident.checkpoint
        fcpe = self.fcpe() if checkpoint.if_f0 and params.f0_method == "fcpe" else None
        models = SegmentModels(
            hubert=self.hubert, synthesizer=checkpoint.model, version=checkpoint.version,
            index=resident.index, device=self.device,
        )  # fmt: skip
        with torch.inference_mode():
            out, out_rate = run_pipeline(
                wav16k, models, params, if_f0=checkpoint.if_f0, sample_rate=checkpoint.sample_rate,
                rmvpe=self.rmvpe, fcpe=fcpe, crepe_model=self.crepe_model, segments=self.segments,
                profile=self.profile_for(params), timings=timings, trace=trace,
            )  # fmt: skip
        audio_int16 = to_int16(out)
        if trace is not None:
            trace.setdefault("audio_int16", []).append(audio_int16)
        timings["total"] = time.perf_counter() - started
        if checkpoint.if_f0:
            self._methods_used.add(params.f0_method)
        return ConversionResult(
            audio=audio_int16.astype(np.float32) / 32768.0, sample_rate=out_rate, timings=timings
        )
