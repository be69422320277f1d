"""The multipart form fields of the synthesis routes, validated with the API's ranges.

Fields the client leaves out are None and fall back to the stored defaults
(``/config``); a value outside its range is a 400 naming the field, raised by
FastAPI's validation and rewritten by ``rvc.api.errors``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, File, Form, UploadFile

from rvc.processing.params import F0Method, SynthesisOverrides

__all__ = ["ConversionForm", "SynthesisForm", "conversion_form", "synthesis_form"]


@dataclass(frozen=True)
class ConversionForm:
    overrides: SynthesisOverrides
    voice: str | None
    seed: int | None


@dataclass(frozen=True)
class SynthesisForm(ConversionForm):
    text: str
    reference_audio: UploadFile | None


def conversion_form(
    pitch_shift: Annotated[int | None, Form(ge=-24, le=24, description="semitones, -24..24")] = None,
    f0_method: Annotated[F0Method | None, Form(description="rmvpe, pm, harvest or crepe")] = None,
    index_rate: Annotated[float | None, Form(ge=0.0, le=1.0, description="0..1")] = None,
    filter_radius: Annotated[int | None, Form(ge=0, le=7, description="0..7")] = None,
    rms_mix_rate: Annotated[float | None, Form(ge=0.0, le=1.0, description="0..1")] = None,
    protect: Annotated[float | None, Form(ge=0.0, le=0.5, description="0..0.5")] = None,
    voice: Annotated[
        str | None, Form(max_length=128, description="RVC voice (a .pth in WEIGHTS_DIR); default RVC_MODEL")
    ] = None,
    seed: Annotated[int | None, Form(ge=0, le=2**31 - 1, description="fixes sampling for repeatable output")] = None,
) -> ConversionForm:
    overrides = SynthesisOverrides(
        pitch_shift=pitch_shift, f0_method=f0_method, index_rate=index_rate, filter_radius=filter_radius,
        rms_mix_rate=rms_mix_rate, protect=protect,
    )
    return ConversionForm(overrides=overrides, voice=voice or None, seed=seed)


def synthesis_form(
    text: Annotated[str, Form(description="what to say")],
    conversion: Annotated[ConversionForm, Depends(conversion_form)],
    reference_audio: Annotated[
        UploadFile | None, File(description="clip whose speaking style Spark-TTS imitates; default: the stored one")
    ] = None,
    reference_text: Annotated[str | None, Form(max_length=1000, description="transcript of the clip")] = None,
    skip_rvc: Annotated[bool | None, Form(description="return the Spark-TTS voice unconverted")] = None,
    temperature: Annotated[float | None, Form(gt=0.0, le=2.0, description="Spark-TTS sampling temperature")] = None,
    top_k: Annotated[int | None, Form(ge=1, le=10000, description="Spark-TTS top-k")] = None,
    top_p: Annotated[float | None, Form(gt=0.0, le=1.0, description="Spark-TTS nucleus sampling")] = None,
) -> SynthesisForm:
    tts_fields = {"reference_text": reference_text, "skip_rvc": skip_rvc, "temperature": temperature,
                  "top_k": top_k, "top_p": top_p}
    overrides = conversion.overrides.model_copy(update={k: v for k, v in tts_fields.items() if v is not None})
    upload = reference_audio if reference_audio is not None and reference_audio.filename else None
    return SynthesisForm(
        overrides=overrides, voice=conversion.voice, seed=conversion.seed, text=text, reference_audio=upload
    )
