"""The web playground at ``/``: one static page served by the gateway itself.

The page is plain HTML, CSS and ES modules under ``rvc/api/static/`` (no build
step, nothing fetched from elsewhere), so the service needs no front-end
server. Besides the files there is one small JSON route, ``POST /sentences``,
that previews how the pipeline will speak a text: the server's own
normaliser (on, as by default) and splitter, instead of a JavaScript copy
that could drift.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from rvc.processing.normalize import normalize_text
from rvc.processing.sentences import split_sentences

__all__ = ["STATIC_DIR", "router"]

STATIC_DIR = Path(__file__).resolve().parent / "static"
PREVIEW_MAX_CHARS = 100_000  # a preview of text far over MAX_TEXT_CHARS still answers, with the limit

router = APIRouter(tags=["playground"])
router.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")


class SentencePreviewRequest(BaseModel):
    text: str = Field(max_length=PREVIEW_MAX_CHARS, description="the text a synthesis request would send")


class SentencePreview(BaseModel):
    sentences: list[str] = Field(
        description="the sentences the pipeline speaks (normalised, as by default), one TTS call each, in order"
    )
    normalized_text: str = Field(description="the whole text as spoken: numbers, dates and symbols as words")
    characters: int = Field(description="length of the stripped text, as MAX_TEXT_CHARS counts it")
    max_text_chars: int = Field(description="the longest text a synthesis request accepts")


@router.get("/", include_in_schema=False)
async def playground() -> FileResponse:
    # no-cache: the page must follow the server it is served by after an upgrade
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html", headers={"Cache-Control": "no-cache"})


@router.post(
    "/sentences", response_model=SentencePreview,
    summary="Preview the normalised text, its sentence split and its character count (no synthesis)",
)
async def preview_sentences(body: SentencePreviewRequest, request: Request) -> SentencePreview:
    text = body.text.strip()
    spoken = await asyncio.to_thread(normalize_text, text)
    return SentencePreview(
        sentences=split_sentences(spoken), normalized_text=spoken, characters=len(text),
        max_text_chars=request.app.state.settings.max_text_chars,
    )
