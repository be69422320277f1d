"""Unload and load Triton's models through its repository API (idle unload, ``IDLE_UNLOAD_S``).

The repository API works the same on a tritonserver this service started and on a remote one
(``--no-triton``), as long as that server runs with ``--model-control-mode=explicit`` (the launcher
adds it, with ``--load-model=*``, when IDLE_UNLOAD_S is set). A server in the default mode refuses
both calls; ``ModelControlRefused`` says so once, and the caller keeps the models loaded.

Triton answers an unload once it has started, not once the model is gone (its stub process may
still be exiting), so ``unload_all`` waits until the index no longer says READY: a load issued
right after must not race the unload it follows.
"""

from __future__ import annotations

import asyncio
import logging
import time

import tritonclient.grpc.aio as grpcaio
from tritonclient.utils import InferenceServerException

from rvc.errors import ModelControlRefused, TTSBackendError

__all__ = ["TritonModelControl"]

logger = logging.getLogger(__name__)

_READY = "READY"
_LOADED = ("READY", "UNLOADING")  # an unloading model's stub still holds its memory
_REFUSED_MARKERS = ("not allowed", "polling is enabled", "model control mode", "explicit")


class TritonModelControl:
    """Load and unload every model of one tritonserver's repository (gRPC, asyncio)."""

    def __init__(self, url: str, *, timeout_s: float = 600.0) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self._client = grpcaio.InferenceServerClient(url)

    async def close(self) -> None:
        await self._client.close()

    async def states(self) -> dict[str, str]:
        """Model name -> its state in the repository index (READY, UNAVAILABLE, LOADING, ...)."""
        try:
            index = await self._client.get_model_repository_index(as_json=True, client_timeout=30.0)
        except InferenceServerException as exc:
            raise TTSBackendError(f"Triton at {self.url} did not list its models: {exc.message()}") from exc
        return {model["name"]: model.get("state", "") for model in index.get("models", [])}

    async def unload_all(self) -> list[str]:
        """Unload every READY model; returns their names once every one is unloaded."""
        ready = sorted(name for name, state in (await self.states()).items() if state == _READY)
        for name in ready:
            try:
                await self._client.unload_model(name, client_timeout=self.timeout_s)
            except InferenceServerException as exc:
                raise self._mapped(exc, f"unload {name}") from exc
        deadline = time.monotonic() + self.timeout_s
        while any(state in _LOADED for name, state in (await self.states()).items() if name in ready):
            if time.monotonic() > deadline:
                raise TTSBackendError(f"Triton at {self.url} still had models READY {self.timeout_s:g} s after "
                                      "their unload")
            await asyncio.sleep(0.1)
        return ready

    async def load_all(self) -> list[str]:
        """Load every model of the repository that is not READY (models another gateway unloaded too), all
        at once (Triton loads them in parallel; ``spark_tts`` needs the codec models only at its first
        request); returns their names."""
        missing = sorted(name for name, state in (await self.states()).items() if state != _READY)

        async def load(name: str) -> None:
            try:
                await self._client.load_model(name, client_timeout=self.timeout_s)
            except InferenceServerException as exc:
                raise self._mapped(exc, f"load {name}") from exc

        await asyncio.gather(*(load(name) for name in missing))
        return missing

    def _mapped(self, exc: InferenceServerException, action: str) -> TTSBackendError:
        message = exc.message() or str(exc)
        if any(marker in message.lower() for marker in _REFUSED_MARKERS):
            return ModelControlRefused(
                f"Triton at {self.url} refused to {action}: {message} (start it with --model-control-mode=explicit "
                "--load-model='*' for idle unload)"
            )
        return TTSBackendError(f"Triton at {self.url} could not {action}: {message}")
