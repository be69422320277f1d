"""Idle unload against a Triton that does not allow model control (a remote one started in the default
mode): the gateway says why, keeps Triton's models loaded and still serves. The package's stack runs
its tritonserver in that mode, so this needs no server of its own."""

from __future__ import annotations

import asyncio

import pytest

from rvc.errors import ModelControlRefused
from rvc.grpc.model_control import TritonModelControl
from rvc.processing.backends import TritonSpeech
from tests.stack import Stack


def test_default_mode_triton_refuses_unload_and_the_gateway_keeps_its_models(stack: Stack) -> None:
    async def scenario() -> None:
        control = TritonModelControl(stack.settings.triton_grpc_url)
        try:
            with pytest.raises(ModelControlRefused, match="--model-control-mode=explicit"):
                await control.unload_all()
            assert all(state == "READY" for state in (await control.states()).values())
        finally:
            await control.close()
        speech = TritonSpeech(stack.settings.model_copy(update={"idle_unload_s": 5.0}))
        await speech.start()
        try:
            await speech.unload_models()  # logged, remembered, not raised: the workers still stop
            assert speech.control_refused is not None and "explicit" in speech.control_refused
            assert "refused" in speech.describe()["idle_unload"]
            await speech.load_models()  # nothing to do, nothing asked
            assert await speech.ready()
        finally:
            await speech.close()

    asyncio.run(scenario())
