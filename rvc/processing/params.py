"""Per-request synthesis parameters and the stored defaults they fall back to.

A request names only what it wants to change; every other field comes from
the stored defaults (``GET``/``POST /config``). ``SynthesisDefaults`` is
immutable and replaced as a whole, so a request always sees one consistent
snapshot and never another request's values.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["F0Method", "SynthesisDefaults", "SynthesisOverrides"]

F0Method = Literal["rmvpe", "pm", "harvest", "crepe"]


class SynthesisDefaults(BaseModel):
    """Every tunable of one synthesis; the ranges are the API's contract."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    reference_text: str = Field("", max_length=1000, description="transcript of the reference clip (optional)")
    pitch_shift: int = Field(0, ge=-24, le=24, description="semitones applied by RVC")
    f0_method: F0Method = Field("rmvpe", description="pitch extractor used by RVC")
    index_rate: float = Field(0.75, ge=0.0, le=1.0, description="how much of the voice's faiss index to blend in")
    filter_radius: int = Field(3, ge=0, le=7, description="median filter radius for harvest f0")
    rms_mix_rate: float = Field(0.25, ge=0.0, le=1.0, description="1 keeps the output's own loudness envelope")
    protect: float = Field(0.33, ge=0.0, le=0.5, description="protects voiceless consonants; 0.5 disables")
    skip_rvc: bool = Field(False, description="return the Spark-TTS voice without conversion")
    temperature: float = Field(0.8, gt=0.0, le=2.0, description="Spark-TTS sampling temperature")
    top_k: int = Field(50, ge=1, le=10000, description="Spark-TTS top-k sampling")
    top_p: float = Field(0.95, gt=0.0, le=1.0, description="Spark-TTS nucleus sampling")


class SynthesisOverrides(BaseModel):
    """The fields a request (or ``POST /config``) sets; None means "use the default"."""

    model_config = ConfigDict(extra="forbid")

    reference_text: str | None = Field(None, max_length=1000)
    pitch_shift: int | None = Field(None, ge=-24, le=24)
    f0_method: F0Method | None = None
    index_rate: float | None = Field(None, ge=0.0, le=1.0)
    filter_radius: int | None = Field(None, ge=0, le=7)
    rms_mix_rate: float | None = Field(None, ge=0.0, le=1.0)
    protect: float | None = Field(None, ge=0.0, le=0.5)
    skip_rvc: bool | None = None
    temperature: float | None = Field(None, gt=0.0, le=2.0)
    top_k: int | None = Field(None, ge=1, le=10000)
    top_p: float | None = Field(None, gt=0.0, le=1.0)

    def apply(self, defaults: SynthesisDefaults) -> SynthesisDefaults:
        changes = {name: value for name, value in self.model_dump().items() if value is not None}
        return defaults.model_copy(update=changes)
