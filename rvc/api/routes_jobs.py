"""Long-form jobs: ``POST /jobs``, ``GET /jobs``, ``GET/DELETE /jobs/{id}``, ``GET /jobs/{id}/audio``.

``POST /jobs`` takes the same form as ``/synthesize`` (text up to
MAX_JOB_CHARS, voice or reference clip, every synthesis field, ``format``,
``sample_rate``, ``speed``), checks all of it at once (a 400 names the
field) and answers 202 with the job's status; the audio is made in the
background (``rvc.processing.job_runner``) and kept until JOB_RETENTION_S
after the job ends. ``DELETE`` cancels a queued or running job (the audio done
so far stays fetchable) and removes a finished one.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from rvc.api.dependencies import Services, form_body
from rvc.api.formats import content_type, output_headers
from rvc.api.forms import SynthesisForm, synthesis_form
from rvc.errors import InvalidInput
from rvc.processing.jobs import JOB_STATES, JobList, JobStatus, job_audio, job_status, parse_state
from rvc.processing.requests import TextLimit, build_request

__all__ = ["router"]

router = APIRouter(prefix="/jobs", tags=["jobs"])

JobId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="the id POST /jobs returned")]


class Deleted(BaseModel):
    deleted: str


@router.post(
    "", status_code=202, response_model=JobStatus, dependencies=[Depends(form_body)],
    summary="Start a long-form synthesis job (text up to MAX_JOB_CHARS); poll GET /jobs/{id}",
)
async def create_job(
    services: Services, form: Annotated[SynthesisForm, Depends(synthesis_form)]
) -> JSONResponse:
    if form.granularity != "sentence":
        raise InvalidInput("granularity: a job is made sentence by sentence; leave it out or send 'sentence'",
                           field="granularity")
    settings = services.settings
    limit = TextLimit(settings.max_job_chars, source="MAX_JOB_CHARS", advice="split it into several jobs")
    reference = await form.reference_audio.read() if form.reference_audio is not None else None
    synthesis = await build_request(form.text, form.fields, services, limit=limit, reference=reference)
    record = await services.jobs.submit(synthesis, form.output)
    status = job_status(record)
    return JSONResponse(status.model_dump(mode="json"), status_code=202, headers={"Location": f"/jobs/{record.id}"})


@router.get("", response_model=JobList, summary="Jobs, newest first")
async def list_jobs(
    services: Services,
    state: Annotated[str | None, Query(description=f"only jobs in this state: {', '.join(JOB_STATES)}")] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="at most this many")] = 50,
) -> JobList:
    wanted = parse_state(state)
    records = await asyncio.to_thread(services.jobs.store.recent, limit=limit, state=wanted)
    return JobList(jobs=[job_status(record) for record in records])


@router.get("/{job_id}", response_model=JobStatus, summary="A job's state, progress, ETA and warnings")
async def get_job(services: Services, job_id: JobId) -> JobStatus:
    return job_status(await asyncio.to_thread(services.jobs.store.get, job_id))


@router.get(
    "/{job_id}/audio", summary="The job's audio: all of it when done, the part done so far while it runs",
    responses={200: {"description": "audio in the job's format"}, 409: {"description": "no sentence finished yet"}},
)
async def get_job_audio(services: Services, job_id: JobId) -> Response:
    audio = await job_audio(services.jobs.store, job_id)
    status = audio.status
    headers = output_headers(audio.output, audio.sample_rate, audio.seconds) | {
        "X-Job-State": status.state.value,
        "X-Sentences-Done": str(status.sentences_done),
        "X-Sentences-Total": str(status.sentences_total),
        "Content-Disposition": f'attachment; filename="job-{job_id}.{audio.output.info.extension}"',
    }
    return Response(audio.body, media_type=content_type(audio.output, audio.sample_rate), headers=headers)


@router.delete(
    "/{job_id}", response_model=JobStatus | Deleted,
    summary="Cancel a queued or running job (its audio so far is kept); remove a finished one",
)
async def delete_job(services: Services, job_id: JobId) -> JobStatus | Deleted:
    record = await asyncio.to_thread(services.jobs.store.get, job_id)
    if not record.state.finished:
        return job_status(await services.jobs.cancel(job_id))
    await asyncio.to_thread(services.jobs.store.delete, job_id)
    return Deleted(deleted=job_id)
