"""Health, status, stored configuration and metrics."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from rvc.api.dependencies import Services, form_body, services_of
from rvc.audio import resample
from rvc.processing.contract import SynthesisDefaults, SynthesisOverrides
from rvc.processing.defaults_store import StoredReference
from rvc.processing.requests import TTS_RATE, check_reference, decode_clip
from rvc.processing.services import VoiceServices

__all__ = ["router"]

router = APIRouter(tags=["service"])


class Placement(BaseModel):
    """Where one part runs: ``gateway``, ``triton.<model>``, ``rvc.worker.<id>``; dtype null for the gateway."""

    part: str
    device: str
    dtype: str | None


class Health(BaseModel):
    healthy: bool
    status: Literal["ready", "idle", "degraded", "error"]
    tts_ready: bool
    rvc_ready: bool
    storage_ready: bool
    demo_assets: bool
    problems: list[str]
    placement: list[Placement]


class Probe(BaseModel):
    ready: bool
    problems: list[str]


class ReferenceInfo(BaseModel):
    stored: bool
    duration_s: float | None = None
    sample_rate: int | None = None
    sha256: str | None = None


class StoredConfig(BaseModel):
    defaults: SynthesisDefaults
    reference_audio: ReferenceInfo


def _reference_info(reference: StoredReference | None) -> ReferenceInfo:
    if reference is None:
        return ReferenceInfo(stored=False)
    return ReferenceInfo(
        stored=True, duration_s=round(reference.duration_s, 3), sample_rate=reference.sample_rate,
        sha256=reference.sha256,
    )


async def _config(services: VoiceServices) -> StoredConfig:
    defaults = await asyncio.to_thread(services.store.get)
    return StoredConfig(defaults=defaults, reference_audio=_reference_info(await asyncio.to_thread(services.store.reference)))


@router.get(
    "/health",
    response_model=Health,
    summary="Every part: ready, idle (models unloaded after IDLE_UNLOAD_S; the next request loads them), degraded "
    "(Triton, the RVC workers or the database down; says which) or error",
    responses={503: {"model": Health, "description": "neither Triton nor an RVC worker is ready"}},
)
async def health(services: Services) -> JSONResponse:
    report = await services.health()
    body = Health(
        healthy=report.status in ("ready", "idle"), status=report.status, tts_ready=report.tts_ready,
        rvc_ready=report.rvc_ready, storage_ready=report.storage_ready, demo_assets=report.demo_assets,
        problems=list(report.problems),
        placement=[Placement(part=p.part, device=p.device, dtype=p.dtype) for p in services.placements()],
    )
    return JSONResponse(body.model_dump(), status_code=503 if report.status == "error" else 200)


@router.get(
    "/health/ready",
    response_model=Probe,
    summary="Readiness for a load balancer: 200 when this gateway's own parts serve (RVC workers, its database)",
    responses={503: {"model": Probe, "description": "no RVC worker is alive or the database is unreachable"}},
)
async def health_ready(services: Services) -> JSONResponse:
    """Ready means this gateway can serve: an RVC worker is alive and its database answers.

    Triton is not part of it on purpose. It is shared by every gateway (or
    remote), so when it is down every gateway is equally unable to synthesise;
    taking them all out of the load balancer would also take down ``/rvc``,
    the voice routes and the playground, which still work, and synthesis
    answers 503 with Retry-After meanwhile. ``/health`` says ``degraded`` and why.
    """
    report = await services.health()
    problems = [] if report.rvc_ready else ["no RVC worker is alive"]
    if not report.storage_ready:
        problems.append("the storage database is unreachable")
    body = Probe(ready=report.serving, problems=problems)
    return JSONResponse(body.model_dump(), status_code=200 if report.serving else 503)


@router.get("/health/live", response_model=Probe, summary="Liveness: 200 whenever the process answers")
async def health_live() -> Probe:
    """Asks nothing of Triton, the workers or the database: a restart would fix none of them."""
    return Probe(ready=True, problems=[])


@router.get(
    "/status",
    summary="Models, workers, each part's device and dtype, request counts, uptime, Triton, the speaker-token "
    "cache, idle unload",
)
async def status(services: Services) -> dict[str, Any]:
    report, speaker_cache = await asyncio.gather(services.health(), services.speaker_cache())
    return {"status": report.status, "tts_ready": report.tts_ready, "rvc_ready": report.rvc_ready,
            **await asyncio.to_thread(services.status), "speaker_cache": speaker_cache}


@router.get("/config", response_model=StoredConfig, summary="The stored defaults every request falls back to")
async def get_config(services: Services) -> StoredConfig:
    return await _config(services)


@router.post("/config", response_model=StoredConfig, summary="Change stored defaults (only the fields given)")
async def update_config(overrides: SynthesisOverrides, services: Services) -> StoredConfig:
    await asyncio.to_thread(services.store.update, overrides)
    return await _config(services)


@router.post(
    "/config/reference-audio", response_model=StoredConfig,
    summary="Store the default reference clip used when a request uploads none", dependencies=[Depends(form_body)],
)
async def store_reference(
    reference_audio: Annotated[UploadFile, File(description="the default reference clip")],
    services: Services,
) -> StoredConfig:
    wav, rate = await decode_clip(
        await reference_audio.read(), field="reference_audio", max_seconds=services.settings.max_reference_seconds
    )
    check_reference(await asyncio.to_thread(resample, wav, rate, TTS_RATE))
    await asyncio.to_thread(services.store.set_reference, wav, rate)
    return await _config(services)


@router.delete("/config/reference-audio", response_model=StoredConfig, summary="Forget the stored reference clip")
async def delete_reference(services: Services) -> StoredConfig:
    await asyncio.to_thread(services.store.clear_reference)
    return await _config(services)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request, services: Annotated[VoiceServices, Depends(services_of)]) -> Response:
    metrics = request.app.state.metrics
    metrics.speaker_cache.update(await services.speaker_cache())  # Triton's numbers as of this scrape
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
