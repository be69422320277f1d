"""The multipart form fields of the form routes, generated from the request contract.

Every tunable field is made from its declaration in ``rvc.processing.contract``
(type, range, help), so the OpenAPI schema shows the ranges the service
enforces and nothing here repeats one. Each route reads its tunables through
one generated dependency, so a bad value is reported once. Values are parsed
strictly from their text ("3.5" is not an integer, "nan" not a number).

Fields the client leaves out fall back to the saved voice's parameters, then
to the stored defaults (``/config``). ``voice`` names a saved voice
(``/voices``); when no saved voice has that name it is read as an RVC model
name, which is what the field meant before saved voices existed.
``rvc_model`` names the .pth explicitly and overrides the voice's model.
``format`` / ``Accept``, ``sample_rate`` and ``speed`` shape the output.
``normalize`` (default true) writes numbers, dates and symbols out as words.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Optional, get_args

from fastapi import Depends, File, Form, Header, UploadFile
from pydantic.fields import FieldInfo

from rvc.api.formats import output_spec
from rvc.processing.contract import (
    RVC_MODEL_MAX_CHARS,
    Granularity,
    RequestOptions,
    SynthesisDefaults,
    SynthesisOverrides,
    Target,
    constraints,
    fields_for,
)
from rvc.processing.formats import OutputSpec
from rvc.processing.requests import VoiceDesign, VoiceFields, voice_design
from rvc.processing.voices import VOICE_NAME_PATTERN

__all__ = [
    "ConversionForm",
    "DesignForm",
    "SynthesisForm",
    "VoiceForm",
    "conversion_form",
    "design_form",
    "form_fields",
    "sent_file",
    "synthesis_form",
    "voice_form",
]

VOICE_NAME_SCHEMA = {"pattern": VOICE_NAME_PATTERN}


def form_fields(fields: dict[str, FieldInfo]) -> Callable[..., dict[str, Any]]:
    """A dependency reading ``fields`` as optional form fields; it returns those the client sent."""
    parameters = []
    for name, info in fields.items():
        limits: dict[str, Any] = constraints(info)
        if float in (info.annotation, *get_args(info.annotation)):
            limits["allow_inf_nan"] = False
        form = Form(description=info.description, **limits)
        annotation = Annotated[Optional[info.annotation], form]  # type: ignore[name-defined]  # noqa: UP045 - a runtime type
        parameters.append(
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation)
        )

    def read(**values: Any) -> dict[str, Any]:
        return {name: value for name, value in values.items() if value is not None}

    read.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]  # FastAPI reads it
    return read


def _overrides(values: dict[str, Any]) -> SynthesisOverrides:
    # FastAPI checked every value against the declaration already: trusted from here on
    stored = {name: value for name, value in values.items() if name in SynthesisDefaults.model_fields}
    return SynthesisOverrides.model_construct(**stored)


_REQUEST = fields_for(RequestOptions)
synthesis_values = form_fields({**fields_for(SynthesisDefaults), **_REQUEST})
conversion_values = form_fields(  # /rvc: no text (no Target.TEXT options) and one file (no granularity)
    {
        **fields_for(SynthesisDefaults, Target.RVC),
        **{n: i for n, i in fields_for(RequestOptions, Target.REQUEST, Target.OUTPUT).items() if n != "granularity"},
    }
)
# POST /voices designs a voice from these (and a seed) when no clip is sent
design_values = form_fields({**fields_for(RequestOptions, Target.VOICE), "seed": RequestOptions.model_fields["seed"]})
# a voice's skip_rvc is set through its rvc_model ("none"), not as a field of its own
voice_values = form_fields({name: info for name, info in fields_for(SynthesisDefaults).items() if name != "skip_rvc"})

VoiceField = Annotated[
    str | None,
    Form(description="a saved voice (GET /voices); a name no saved voice has is taken as an RVC model name "
                     "(the seed's meaning)", json_schema_extra=VOICE_NAME_SCHEMA),
]
RvcModelField = Annotated[
    str | None, Form(max_length=RVC_MODEL_MAX_CHARS, description="RVC model (a .pth in WEIGHTS_DIR); default: the voice's, else RVC_MODEL")
]
AcceptHeader = Annotated[str | None, Header(include_in_schema=False)]


@dataclass(frozen=True, kw_only=True)
class ConversionForm:
    fields: VoiceFields
    output: OutputSpec


@dataclass(frozen=True, kw_only=True)
class SynthesisForm(ConversionForm):
    text: str
    reference_audio: UploadFile | None
    granularity: Granularity = "sentence"


def _read(values: dict[str, Any], voice: str | None, rvc_model: str | None, accept: str | None) -> ConversionForm:
    fields = VoiceFields(
        overrides=_overrides(values), voice=voice or None, rvc_model=rvc_model or None, seed=values.get("seed"),
        normalize=values.get("normalize"), design=voice_design(values),
    )
    output = output_spec(values.get("format"), values.get("sample_rate"), values.get("speed"), accept=accept)
    return ConversionForm(fields=fields, output=output)


def conversion_form(
    values: Annotated[dict[str, Any], Depends(conversion_values)],
    voice: VoiceField = None,
    rvc_model: RvcModelField = None,
    accept: AcceptHeader = None,
) -> ConversionForm:
    return _read(values, voice, rvc_model, accept)


# a module-level alias: rope (tools/refactor.py) cannot follow a parameter annotation holding a call with keywords
ReferenceUpload = Annotated[
    UploadFile | None, File(description="clip whose speaking style Spark-TTS imitates; default: the stored one")
]


def sent_file(upload: UploadFile | None) -> UploadFile | None:
    """The upload, or None when none was sent: a browser sends a file input left empty as a part with no filename."""
    return upload if upload is not None and upload.filename else None


def synthesis_form(
    text: Annotated[str, Form(description="what to say")],
    values: Annotated[dict[str, Any], Depends(synthesis_values)],
    reference_audio: ReferenceUpload = None,
    voice: VoiceField = None,
    rvc_model: RvcModelField = None,
    accept: AcceptHeader = None,
) -> SynthesisForm:
    read = _read(values, voice, rvc_model, accept)
    return SynthesisForm(
        fields=read.fields, output=read.output, text=text, reference_audio=sent_file(reference_audio),
        granularity=values.get("granularity") or "sentence",
    )


@dataclass(frozen=True)
class VoiceForm:
    """A saved voice's parameters as sent: the transcript apart, the rest as overrides."""

    overrides: SynthesisOverrides
    reference_text: str | None


def voice_form(values: Annotated[dict[str, Any], Depends(voice_values)]) -> VoiceForm:
    reference_text = values.pop("reference_text", None)
    return VoiceForm(_overrides(values), reference_text)


@dataclass(frozen=True)
class DesignForm:
    """The voice attributes and seed sent to ``POST /voices``; ``design`` is None when none was sent."""

    design: VoiceDesign | None
    seed: int | None


def design_form(values: Annotated[dict[str, Any], Depends(design_values)]) -> DesignForm:
    return DesignForm(voice_design(values), values.get("seed"))
