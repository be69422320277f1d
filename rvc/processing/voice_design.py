"""Designing a voice once and keeping it: ``POST /voices`` with voice attributes instead of a clip.

Spark-TTS's controllable mode invents a voice from gender, pitch and speed
levels, a new one on every call: the complaint its users repeat most. Here it
runs once, with a seed (drawn when the client sends none, and recorded), on a
neutral sentence; the 32 global tokens the LLM wrote are what "the voice" is,
so they are stored with the voice, and every later request with it conditions
on them (clone mode without a clip): the same voice on every call and after
restarts. The seed and attributes are recorded so the design can be repeated.
"""

from __future__ import annotations

import asyncio
import secrets

from rvc.errors import Conflict
from rvc.grpc.wire import VoiceDesign
from rvc.processing.contract import SynthesisDefaults, SynthesisOverrides
from rvc.processing.pipeline import token_budget
from rvc.processing.services import VoiceServices
from rvc.processing.voices import DesignRecord, SpeakerTokens, VoiceRecord

__all__ = ["DESIGN_TEXT", "design_voice"]

# Long enough for the LLM to settle into the voice, short enough to design in a few seconds.
DESIGN_TEXT = "Hello! This is how I sound, a voice designed from a few simple attributes."
MAX_SEED = 2**31 - 1  # RequestOptions.seed's range


async def design_voice(
    services: VoiceServices,
    name: str,
    design: VoiceDesign,
    *,
    seed: int | None,
    rvc_model: str | None,
    defaults: SynthesisOverrides,
    description: str,
    overwrite: bool,
) -> VoiceRecord:
    """Generate once from ``design`` (and ``seed``), store the voice's global tokens under ``name``."""
    if not overwrite and name in await asyncio.to_thread(services.voices.names):
        raise Conflict(f"a voice named {name!r} exists; send overwrite=true to replace it", field="name")
    seed = secrets.randbelow(MAX_SEED + 1) if seed is None else seed
    settings: SynthesisDefaults = defaults.apply(await services.stored_defaults())
    _, global_tokens = await services.speech.design(
        DESIGN_TEXT, design, settings, seed=seed, max_new_tokens=token_budget(DESIGN_TEXT)
    )
    record = DesignRecord.model_validate(
        {"gender": design.gender, "pitch": design.pitch, "speed_level": design.speed_level, "seed": seed}
    )
    return await asyncio.to_thread(
        services.voices.create, name, None, rvc_model=rvc_model, defaults=defaults, description=description,
        overwrite=overwrite, tokens=SpeakerTokens(tuple(int(t) for t in global_tokens)),
        record_fields={"design": record, "reference_file": ""},
    )
