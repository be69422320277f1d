"""The request contract: one declaration per tunable, and everything that derives from it agrees with it."""

from __future__ import annotations

import dataclasses
import typing

import pytest
from pydantic import ValidationError

from rvc.grpc.client import TTSParams
from rvc.processing.backends import conversion_params
from rvc.processing.contract import (
    F0Method,
    RequestOptions,
    SynthesisDefaults,
    SynthesisOverrides,
    Target,
    constraints,
    fields_for,
)
from rvc.processing.voices import VoiceRecord
from rvc.server import F0_METHODS, ConversionParams


def _number_schema(model: type, name: str) -> dict:
    prop = model.model_json_schema()["properties"][name]
    options = [option for option in prop.get("anyOf", [prop]) if option.get("type") != "null"]
    (number,) = options
    return {key: value for key, value in number.items() if key not in ("title", "description", "default")}


def test_overrides_mirror_every_stored_default_with_the_same_checks() -> None:
    assert list(SynthesisOverrides.model_fields) == list(SynthesisDefaults.model_fields)
    for name in SynthesisDefaults.model_fields:
        assert _number_schema(SynthesisOverrides, name) == _number_schema(SynthesisDefaults, name), name
    assert SynthesisOverrides().given() == {}


def test_every_tunable_has_a_target_and_help() -> None:
    for model in (SynthesisDefaults, RequestOptions):
        for name, info in model.model_fields.items():
            assert name in fields_for(model, *Target), name
            assert info.description, name


def test_the_worker_parameters_are_the_fields_marked_rvc() -> None:
    defaults = SynthesisDefaults()
    params = conversion_params(defaults, seed=7)
    rvc_fields = set(fields_for(SynthesisDefaults, Target.RVC))
    assert rvc_fields == {"pitch_shift", "f0_method", "index_rate", "filter_radius", "rms_mix_rate", "protect",
                          "rvc_profile"}
    assert rvc_fields <= {field.name for field in dataclasses.fields(ConversionParams)}
    assert {name: getattr(params, name) for name in rvc_fields} == defaults.values_for(Target.RVC)
    assert params.seed == 7
    # the contract's defaults are the converter's own (the RVC WebUI's)
    assert dataclasses.replace(params, seed=None) == ConversionParams()


def test_the_contract_offers_exactly_the_workers_f0_methods() -> None:
    assert typing.get_args(F0Method) == F0_METHODS


def test_the_triton_parameters_are_the_fields_marked_tts() -> None:
    changed = SynthesisDefaults(temperature=1.1, top_k=7, top_p=0.5)
    params = TTSParams(**changed.values_for(Target.TTS), max_new_tokens=64, seed=3)
    assert (params.temperature, params.top_k, params.top_p, params.max_new_tokens) == (1.1, 7, 0.5, 64)


@pytest.mark.parametrize(
    ("field", "value"),
    [("pitch_shift", True), ("pitch_shift", "3"), ("pitch_shift", 2.0), ("index_rate", float("nan")),
     ("top_p", float("inf")), ("skip_rvc", 1), ("f0_method", "yin"), ("temperature", 0.0), ("reference_text", 5)],
)
def test_values_are_checked_strictly_at_entry(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as caught:
        SynthesisOverrides.model_validate({field: value})
    assert [error["loc"] for error in caught.value.errors()] == [(field,)]


def test_request_options_share_the_declared_ranges() -> None:
    assert constraints(RequestOptions.model_fields["speed"]) == {"ge": 0.25, "le": 4.0}
    assert constraints(SynthesisDefaults.model_fields["reference_text"]) == {"max_length": 1000}
    with pytest.raises(ValidationError):
        RequestOptions.model_validate({"seed": True})


def test_a_saved_voice_round_trips_its_overrides() -> None:
    overrides = SynthesisOverrides.model_validate({"pitch_shift": -3, "skip_rvc": True})
    record = VoiceRecord(
        name="v", defaults=overrides, reference_file="reference-x.wav", reference_sha256="0" * 64,
        reference_seconds=1.0, created_at=0.0, updated_at=0.0,
    )
    loaded = VoiceRecord.model_validate_json(record.model_dump_json())
    assert loaded.defaults.given() == {"pitch_shift": -3, "skip_rvc": True}
    assert loaded.defaults.apply(SynthesisDefaults()).pitch_shift == -3


def test_the_rvc_profiles_are_the_workers_profiles() -> None:
    from typing import get_args

    from rvc.infer.params import PROFILES
    from rvc.processing.contract import RvcProfile

    assert get_args(RvcProfile) == PROFILES
    assert SynthesisDefaults().rvc_profile is None  # unset: the service's RVC_PROFILE decides


def test_designed_voice_values_are_spark_tts_attribute_tokens() -> None:
    """gender / pitch / speed_level accept exactly the values Spark-TTS's control prompt encodes."""
    from typing import get_args

    from rvc.processing.contract import Gender, Level
    from sparktts import prompts
    from sparktts.serving import inputs

    assert set(get_args(Gender)) == set(prompts.GENDER) == set(inputs.GENDERS)
    assert list(get_args(Level)) == list(prompts.LEVEL) == list(inputs.LEVELS)
    assert set(fields_for(RequestOptions, Target.VOICE)) == {"gender", "pitch", "speed_level"}
