"""What every route may depend on: the app's services, and the rules a form body must keep.

A form route refuses a body that is not a form (415 naming multipart:
FastAPI would otherwise read no fields and answer as if none were sent) and
a field sent twice (400: the seed's routes took the last copy silently).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from rvc.errors import InvalidInput, UnsupportedMediaType
from rvc.processing.services import VoiceServices

__all__ = ["FORM_TYPES", "Services", "form_body", "services_of"]

FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


def services_of(request: Request) -> VoiceServices:
    return request.app.state.services


Services = Annotated[VoiceServices, Depends(services_of)]


async def form_body(request: Request) -> None:
    """Refuse a non-form body (415) and repeated fields (400) before any field is read."""
    content_type = request.headers.get("content-type", "")
    media_type = content_type.partition(";")[0].strip().lower()
    if media_type not in FORM_TYPES:
        if not content_type and request.headers.get("content-length", "0") == "0":
            return  # no body at all: the missing fields are named one by one
        raise UnsupportedMediaType(
            f"{request.method} {request.url.path} takes multipart/form-data fields (curl -F name=value), "
            f"not {media_type or 'a body without a Content-Type'}",
        )
    form = await request.form()
    repeated = sorted({key for key in form if len(form.getlist(key)) > 1})
    if repeated:
        name = repeated[0]
        raise InvalidInput(
            f"{name} was sent {len(form.getlist(name))} times; send each field once", field=name
        )
