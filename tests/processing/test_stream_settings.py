"""RVC_STREAM_*: chunk mode's stream geometry from the environment, checked when the service is built."""

from __future__ import annotations

import pytest

from rvc.errors import ConfigError
from rvc.infer.stream_config import StreamConfig
from rvc.processing.services import stream_config
from rvc.settings import load_settings


def test_unset_variables_keep_the_measured_defaults() -> None:
    assert stream_config(load_settings()) == StreamConfig()


def test_set_variables_replace_only_their_own_length(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RVC_STREAM_STEADY_BLOCK_S", "1.0")
    monkeypatch.setenv("RVC_STREAM_CONTEXT_S", "2.5")
    config = stream_config(load_settings())
    assert (config.steady_block, config.context) == (1.0, 2.5)
    assert (config.block, config.crossfade, config.search) == (StreamConfig.block, StreamConfig.crossfade, StreamConfig.search)


@pytest.mark.parametrize(
    ("variable", "value", "reason"),
    [
        ("RVC_STREAM_STEADY_BLOCK_S", "0.1", "steady_block .* must not be shorter than block"),
        ("RVC_STREAM_BLOCK_S", "0.255", "block must be a multiple of 0.01"),
        ("RVC_STREAM_CONTEXT_S", "0.2", "context must be at least"),
    ],
)
def test_an_impossible_geometry_is_a_config_error_naming_the_variables(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, reason: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=f"RVC_STREAM_.*{reason}"):
        stream_config(load_settings())


def test_a_negative_length_is_refused_when_the_settings_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RVC_STREAM_BLOCK_S", "-1")
    with pytest.raises(ConfigError, match="RVC_STREAM_BLOCK_S"):
        load_settings()


def test_prefetch_lead_comes_from_the_environment_and_reaches_each_request(monkeypatch: pytest.MonkeyPatch) -> None:
    from rvc.processing.chunk_pipeline import PREFETCH_LEAD_S, ChunkPipeline, PassThroughVoice

    assert load_settings().stream_prefetch_lead_s == PREFETCH_LEAD_S
    monkeypatch.setenv("STREAM_PREFETCH_LEAD_S", "0.5")
    lead = load_settings().stream_prefetch_lead_s
    assert lead == 0.5
    pipeline = ChunkPipeline(speech=None, voice=PassThroughVoice(), prefetch_lead_s=lead)  # type: ignore[arg-type]
    assert pipeline.prefetch_lead_s == 0.5
    monkeypatch.setenv("STREAM_PREFETCH_LEAD_S", "-1")
    with pytest.raises(ConfigError, match="STREAM_PREFETCH_LEAD_S"):
        load_settings()
