"""Saved voices: ``POST /voices``, ``GET /voices``, ``GET/PATCH/DELETE /voices/{name}``.

A voice binds a name to a reference clip (decoded and stored once at 16 kHz,
so every request sends Triton the same samples and hits its speaker cache),
or, sent ``gender`` / ``pitch`` / ``speed_level`` (and a seed) instead of a
clip, to a voice Spark-TTS designs once and keeps (``rvc.processing.voice_design``),
the clip's transcript, an RVC model and default parameters. ``rvc_model``
takes a .pth name from WEIGHTS_DIR, ``none`` (no RVC: the voice speaks with
Spark-TTS's voice) or ``default`` (whatever RVC_MODEL is at request time,
also what an omitted field means at creation).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Path, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from rvc.api.dependencies import Services, form_body
from rvc.api.forms import VOICE_NAME_SCHEMA, DesignForm, VoiceForm, design_form, sent_file, voice_form
from rvc.errors import InvalidInput
from rvc.processing.contract import DESCRIPTION_MAX_CHARS, RVC_MODEL_MAX_CHARS
from rvc.processing.requests import decode_reference
from rvc.processing.services import VoiceServices
from rvc.processing.voice_design import design_voice
from rvc.processing.voices import VoiceRecord, check_voice_name

__all__ = ["router"]

router = APIRouter(prefix="/voices", tags=["voices"])

NO_RVC, SERVICE_DEFAULT = "none", "default"


class VoiceList(BaseModel):
    voices: list[VoiceRecord]


class Deleted(BaseModel):
    deleted: str


RvcModelField = Annotated[
    str | None,
    Form(max_length=RVC_MODEL_MAX_CHARS, description="a .pth in WEIGHTS_DIR, 'none' (no RVC) or 'default' (RVC_MODEL)"),
]
DescriptionField = Annotated[str | None, Form(max_length=DESCRIPTION_MAX_CHARS, description="what the voice is for")]
VoiceName = Annotated[str, Path(description="a saved voice's name", json_schema_extra=VOICE_NAME_SCHEMA)]


def _model_fields(rvc_model: str | None, services: VoiceServices) -> tuple[dict[str, Any], dict[str, Any]]:
    """The form's rvc_model as (record changes, default-parameter changes)."""
    if rvc_model is None or rvc_model == "":
        return {}, {}
    if rvc_model.lower() == NO_RVC:
        return {}, {"skip_rvc": True}
    if rvc_model.lower() == SERVICE_DEFAULT:
        return {"rvc_model": None}, {"skip_rvc": False}
    return {"rvc_model": services.check_rvc_model(rvc_model)}, {"skip_rvc": False}


# module-level: rope (tools/refactor.py) cannot follow a parameter annotation holding a call with keywords
VoiceClipUpload = Annotated[
    UploadFile | None,
    File(description="the clip whose speaking style Spark-TTS imitates; or design a voice with gender, pitch, "
                     "speed_level and seed (generated once, its speaker tokens kept)"),
]
NewClipUpload = Annotated[UploadFile | None, File(description="a new clip")]
OverwriteField = Annotated[bool, Form(description="replace a voice of the same name")]


@router.post(
    "", status_code=201, response_model=VoiceRecord,
    summary="Save a voice from a clip, or design one from gender/pitch/speed_level (409 if the name exists)",
    dependencies=[Depends(form_body)],
)
async def create_voice(
    services: Services,
    name: Annotated[str, Form(description="the voice's name", json_schema_extra=VOICE_NAME_SCHEMA)],
    parameters: Annotated[VoiceForm, Depends(voice_form)],
    designed: Annotated[DesignForm, Depends(design_form)],
    reference_audio: VoiceClipUpload = None,
    rvc_model: RvcModelField = None,
    description: DescriptionField = None,
    overwrite: OverwriteField = False,
) -> VoiceRecord:
    check_voice_name(name)
    changes, switches = _model_fields(rvc_model, services)
    upload = sent_file(reference_audio)
    if upload is not None and designed.design is not None:
        raise InvalidInput("send either reference_audio (save a clip) or gender/pitch/speed_level (design a voice), "
                           "not both", field="gender")
    if designed.design is not None:
        if parameters.reference_text:
            raise InvalidInput("a designed voice has no clip, so no reference_text", field="reference_text")
        return await design_voice(
            services, name, designed.design, seed=designed.seed, rvc_model=changes.get("rvc_model"),
            defaults=parameters.overrides.merged(**switches), description=description or "", overwrite=overwrite,
        )
    if upload is None:
        raise InvalidInput("reference_audio is required to save a clip; or design a voice with gender (female, male), "
                           "pitch and speed_level", field="reference_audio")
    clip = await decode_reference(await upload.read(), services)
    return await asyncio.to_thread(
        services.voices.create, name, clip, reference_text=parameters.reference_text or "",
        rvc_model=changes.get("rvc_model"), defaults=parameters.overrides.merged(**switches),
        description=description or "", overwrite=overwrite,
    )


@router.get("", response_model=VoiceList, summary="Every saved voice")
async def list_voices(services: Services) -> VoiceList:
    return VoiceList(voices=await asyncio.to_thread(services.voices.records))


@router.get("/{name}", response_model=VoiceRecord, summary="One saved voice")
async def get_voice(name: VoiceName, services: Services) -> VoiceRecord:
    check_voice_name(name)
    return await asyncio.to_thread(services.voices.record, name)


@router.patch(
    "/{name}", response_model=VoiceRecord, summary="Change the fields given (multipart form); the rest stay",
    dependencies=[Depends(form_body)],
)
async def update_voice(
    name: VoiceName,
    services: Services,
    parameters: Annotated[VoiceForm, Depends(voice_form)],
    reference_audio: NewClipUpload = None,
    rvc_model: RvcModelField = None,
    description: DescriptionField = None,
) -> VoiceRecord:
    check_voice_name(name)
    changes, switches = _model_fields(rvc_model, services)
    if parameters.reference_text is not None:
        changes["reference_text"] = parameters.reference_text
    if description is not None:
        changes["description"] = description
    upload = sent_file(reference_audio)
    clip = await decode_reference(await upload.read(), services) if upload is not None else None
    return await asyncio.to_thread(
        services.voices.update, name, reference_wav=clip, changes=changes,
        defaults=parameters.overrides.merged(**switches),
    )


@router.delete("/{name}", response_model=Deleted, summary="Forget a saved voice")
async def delete_voice(name: VoiceName, services: Services) -> JSONResponse:
    check_voice_name(name)
    await asyncio.to_thread(services.voices.delete, name)
    return JSONResponse(Deleted(deleted=name).model_dump())
