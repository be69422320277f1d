"""The multipart form fields of the synthesis routes, validated with the API's ranges.

Fields the client leaves out are None and fall back to the saved voice's
parameters, then to the stored defaults (``/config``); a value outside its
range is a 400 naming the field, raised by FastAPI's validation and rewritten
by ``rvc.api.errors``.

``voice`` names a saved voice (``/voices``); when no saved voice has that
name it is read as an RVC model name, which is what the field meant before
saved voices existed. ``rvc_model`` names the .pth explicitly and overrides
the voice's model. ``format`` / ``Accept``, ``sample_rate`` and ``speed`` shape
the output (``rvc.api.formats``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, File, Form, UploadFile

from rvc.api.formats import output_form
from rvc.processing.formats import OutputSpec
from rvc.processing.params import F0Method, SynthesisOverrides

__all__ = ["ConversionForm", "SynthesisForm", "conversion_form", "rvc_fields", "synthesis_form", "tts_fields"]


@dataclass(frozen=True, kw_only=True)
class ConversionForm:
    overrides: SynthesisOverrides
    voice: str | None
    seed: int | None
    rvc_model: str | None = None
    output: OutputSpec = OutputSpec()


@dataclass(frozen=True, kw_only=True)
class SynthesisForm(ConversionForm):
    text: str
    reference_audio: UploadFile | None


def rvc_fields(
    pitch_shift: Annotated[int | None, Form(ge=-24, le=24, description="semitones, -24..24")] = None,
    f0_method: Annotated[F0Method | None, Form(description="rmvpe, pm, harvest or crepe")] = None,
    index_rate: Annotated[float | None, Form(ge=0.0, le=1.0, description="0..1")] = None,
    filter_radius: Annotated[int | None, Form(ge=0, le=7, description="0..7")] = None,
    rms_mix_rate: Annotated[float | None, Form(ge=0.0, le=1.0, description="0..1")] = None,
    protect: Annotated[float | None, Form(ge=0.0, le=0.5, description="0..0.5")] = None,
) -> SynthesisOverrides:
    """The RVC conversion parameters of a form, as overrides (None: not given)."""
    return SynthesisOverrides(
        pitch_shift=pitch_shift, f0_method=f0_method, index_rate=index_rate, filter_radius=filter_radius,
        rms_mix_rate=rms_mix_rate, protect=protect,
    )


def tts_fields(
    conversion: Annotated[SynthesisOverrides, Depends(rvc_fields)],
    temperature: Annotated[float | None, Form(gt=0.0, le=2.0, description="Spark-TTS sampling temperature")] = None,
    top_k: Annotated[int | None, Form(ge=1, le=10000, description="Spark-TTS top-k")] = None,
    top_p: Annotated[float | None, Form(gt=0.0, le=1.0, description="Spark-TTS nucleus sampling")] = None,
) -> SynthesisOverrides:
    """The conversion parameters plus Spark-TTS's sampling parameters."""
    sampling = {"temperature": temperature, "top_k": top_k, "top_p": top_p}
    return conversion.model_copy(update={k: v for k, v in sampling.items() if v is not None})


def conversion_form(
    output: Annotated[OutputSpec, Depends(output_form)],
    overrides: Annotated[SynthesisOverrides, Depends(rvc_fields)],
    voice: Annotated[
        str | None,
        Form(max_length=128, description="a saved voice (GET /voices); a name no saved voice has is taken as an "
                                         "RVC model name (the seed's meaning)"),
    ] = None,
    rvc_model: Annotated[
        str | None, Form(max_length=128, description="RVC model (a .pth in WEIGHTS_DIR); default: the voice's, "
                                                     "else RVC_MODEL")
    ] = None,
    seed: Annotated[int | None, Form(ge=0, le=2**31 - 1, description="fixes sampling for repeatable output")] = None,
) -> ConversionForm:
    return ConversionForm(
        overrides=overrides, voice=voice or None, seed=seed, rvc_model=rvc_model or None, output=output
    )


def synthesis_form(
    text: Annotated[str, Form(description="what to say")],
    conversion: Annotated[ConversionForm, Depends(conversion_form)],
    parameters: Annotated[SynthesisOverrides, Depends(tts_fields)],
    reference_audio: Annotated[
        UploadFile | None, File(description="clip whose speaking style Spark-TTS imitates; default: the stored one")
    ] = None,
    reference_text: Annotated[str | None, Form(max_length=1000, description="transcript of the clip")] = None,
    skip_rvc: Annotated[bool | None, Form(description="return the Spark-TTS voice unconverted")] = None,
) -> SynthesisForm:
    extra = {"reference_text": reference_text, "skip_rvc": skip_rvc}
    overrides = parameters.model_copy(update={k: v for k, v in extra.items() if v is not None})
    upload = reference_audio if reference_audio is not None and reference_audio.filename else None
    return SynthesisForm(
        overrides=overrides, voice=conversion.voice, seed=conversion.seed, rvc_model=conversion.rvc_model,
        output=conversion.output, text=text, reference_audio=upload,
    )
