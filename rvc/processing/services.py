"""Everything a gateway needs, built from settings and owned for the app's lifetime.

``VoiceServices`` ties the Spark-TTS client, the RVC pool, the stored defaults,
the saved voices and the pipeline together, and answers the questions /health
and /status ask. ``select_voice`` is the one place a request's ``voice`` /
``rvc_model`` fields are resolved (saved voice first, then an RVC model name,
for the seed's clients that sent the .pth stem as ``voice``).
The routes see only this object, so they know nothing about Triton or
processes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from rvc.assets import DEMO_NOTICE, inspect_assets
from rvc.audio import resample
from rvc.device import PartPlacement
from rvc.errors import ConfigError, InvalidInput, StorageUnavailable, VoiceError
from rvc.grpc.triton_metrics import SpeakerCacheStats
from rvc.grpc.wire import VoiceDesign
from rvc.infer.stream_config import StreamConfig
from rvc.processing.chunk_pipeline import ChunkPipeline, StreamingSpeechBackend, VoiceStreamBackend
from rvc.processing.contract import SynthesisDefaults, SynthesisOverrides
from rvc.processing.defaults_store import DefaultsStore
from rvc.processing.idle import IdleUnloader
from rvc.processing.job_runner import JobRunner
from rvc.processing.pipeline import SpeechBackend, TTSRVCPipeline, VoiceBackend
from rvc.processing.voices import (
    DEFAULT_VOICE,
    REFERENCE_RATE,
    SavedVoice,
    SpeakerTokens,
    VoiceStore,
    check_voice_name,
    demo_reference_clip,
)
from rvc.server.voices import list_voices, resolve_voice
from rvc.settings import Settings
from rvc.storage import SEEDED_MARKER, Markers, open_storage
from rvc.storage.jobs import JobStore

__all__ = ["HealthReport", "ManagedSpeech", "ManagedVoice", "VoiceSelection", "VoiceServices", "stream_config"]

logger = logging.getLogger(__name__)


class ManagedSpeech(SpeechBackend, StreamingSpeechBackend, Protocol):
    async def design(
        self, text: str, design: VoiceDesign, settings: SynthesisDefaults, *, seed: int, max_new_tokens: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Speak ``text`` in a voice invented from ``design``: ((T,) float32 16 kHz, (32,) int32 global tokens)."""
        ...

    async def start(self) -> None: ...
    async def close(self) -> None: ...
    async def ready(self) -> bool: ...
    def describe(self) -> dict[str, Any]: ...
    def placements(self) -> tuple[PartPlacement, ...]: ...
    async def unload_models(self) -> None: ...
    async def load_models(self) -> None: ...
    async def speaker_cache(self) -> dict[str, SpeakerCacheStats]:
        """Model name -> its speaker-token cache; VoiceError when the numbers cannot be read."""
        ...


@runtime_checkable
class ClipTokenizer(Protocol):
    async def tokenize(self, reference_wav: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A 16 kHz clip -> its (global (32,), semantic (T,)) int32 speaker tokens."""
        ...


class ManagedVoice(VoiceBackend, Protocol):
    async def start(self) -> None: ...
    async def close(self) -> None: ...
    def ready(self) -> bool: ...
    def describe(self) -> dict[str, Any]: ...
    def placements(self) -> tuple[PartPlacement, ...]: ...
    async def ensure_voice(self, name: str) -> None:
        """Make the .pth ``name`` convertible (load it on the workers if it is not resident)."""
        ...
    async def suspend(self) -> None:
        """Stop the workers until ``start`` (idle unload)."""
        ...


@dataclass(frozen=True)
class HealthReport:
    tts_ready: bool
    rvc_ready: bool
    demo_assets: bool
    problems: tuple[str, ...] = field(default=())
    storage_ready: bool = True
    idle: bool = False  # the models are unloaded on purpose (IDLE_UNLOAD_S); the next request loads them

    @property
    def status(self) -> str:
        if self.idle and self.storage_ready:
            return "idle"
        if self.tts_ready and self.rvc_ready and self.storage_ready:
            return "ready"
        if self.tts_ready or self.rvc_ready:
            return "degraded"
        return "error"

    @property
    def serving(self) -> bool:
        """This gateway's own parts work (RVC workers, its database): what a load balancer should ask.

        Triton is left out on purpose: it is shared by every gateway (or
        remote), so its loss is no reason to route traffic elsewhere, and
        ``/rvc`` and the voice routes still work without it. An idle gateway serves too: its
        next request loads the models (taking it out would mean no request ever wakes it).
        """
        return (self.rvc_ready or self.idle) and self.storage_ready


@dataclass(frozen=True)
class VoiceSelection:
    """What a request's ``voice`` / ``rvc_model`` fields resolved to.

    overrides: the saved voice's parameters (transcript included), applied
    over the stored defaults and under the request's own fields.
    """

    saved_voice: str | None = None
    reference_wav: np.ndarray | None = None  # the saved clip, (T,) float32 at 16 kHz
    rvc_model: str | None = None  # a resident-or-loadable .pth stem; None: the pool's default
    overrides: SynthesisOverrides = field(default_factory=SynthesisOverrides)
    global_tokens: tuple[int, ...] | None = None  # the saved voice's speaker tokens (a designed voice)
    semantic_tokens: tuple[int, ...] | None = None


class VoiceServices:
    def __init__(
        self, settings: Settings, *, speech: ManagedSpeech, voice: ManagedVoice, store: DefaultsStore,
        retry_suspect: bool | None = None, voices: VoiceStore | None = None,
    ) -> None:
        self.settings = settings
        self.speech = speech
        self.voice = voice
        self.store = store
        self.voices = voices or VoiceStore(store.database, check_model=self.check_rvc_model)
        self.markers = Markers(store.database)
        # The stored defaults last read: a request that uploads its clip still runs while the database
        # is down (it needs nothing else from storage), with the defaults as they were.
        self._last_defaults = SynthesisDefaults()
        self.assets = inspect_assets(settings)
        if retry_suspect is None:
            # The random demo LLM stops after a random number of tokens: a retry would be a second coin toss.
            retry_suspect = not self.assets.demo
        # One sentence more in flight than there are workers: every worker converts one of this
        # request's sentences while the next ones are spoken, as one batch (bench_api, budget
        # workload: 1.4-1.5x over the sequential pipeline on the 2-worker demo stack).
        self.pipeline = TTSRVCPipeline(
            speech, voice, retry_suspect=retry_suspect, lookahead=settings.rvc_workers + 1
        )
        # granularity=chunk: one RVC stream per sentence on the pool (PoolVoice.open_stream), as many
        # sentences in flight as there are workers, each stream on a worker of its own when one is free;
        # a stand-in backend without streams serves chunk mode with skip_rvc only
        self.chunks = ChunkPipeline(
            speech, voice if isinstance(voice, VoiceStreamBackend) else None, config=stream_config(settings),
            lookahead=settings.rvc_workers, prefetch_lead_s=settings.stream_prefetch_lead_s,
        )
        self.idle: IdleUnloader | None = None
        if settings.idle_unload_s > 0:
            self.idle = IdleUnloader(settings.idle_unload_s, unload=self._unload_models, load=self._load_models)
        # Long-form jobs: one sentence in flight per job, so a job holds at most one worker; a running job
        # holds the models as a request does (idle unload waits for it, and a job wakes them)
        self.jobs = JobRunner(
            JobStore(store.database, lease_s=settings.job_lease_s),
            TTSRVCPipeline(speech, voice, retry_suspect=retry_suspect, lookahead=1),
            concurrency=settings.job_concurrency, retention_s=settings.job_retention_s,
            ensure_voice=voice.ensure_voice, ready=self._serving,
            hold=None if self.idle is None else self.idle.hold,
        )
        self.started_at = time.time()
        self.counts: dict[str, int] = {"requests": 0, "succeeded": 0, "failed": 0, "cancelled": 0}
        self._tokenizing: set[str] = set()  # saved voices whose clip is being tokenized (keep_clip_tokens)
        self._background: set[asyncio.Task[None]] = set()

    @classmethod
    def from_settings(cls, settings: Settings) -> VoiceServices:
        """The production wiring: Triton's asyncio client and the worker pool."""
        from rvc.processing.backends import PoolVoice, TritonSpeech

        database = open_storage(settings.database_url, state_dir=settings.state_dir, voices_dir=settings.voices_dir)
        return cls(
            settings, speech=TritonSpeech(settings), voice=PoolVoice(settings), store=DefaultsStore(database)
        )

    async def start(self) -> None:
        if self.assets.demo:
            logger.warning(DEMO_NOTICE)
        try:
            await asyncio.to_thread(self.seed_default_voice)
        except StorageUnavailable as exc:
            logger.warning("the default voice is not registered yet: %s", exc.message)
        # Both start in the background; a part that fails to start leaves the service degraded, not dead.
        results = await asyncio.gather(self.speech.start(), self.voice.start(), return_exceptions=True)
        for name, result in zip(("tts", "rvc"), results, strict=True):
            if isinstance(result, BaseException):
                logger.error("%s backend failed to start: %s", name, result)
        self.jobs.start()
        if self.idle is not None:
            self.idle.start()

    async def _serving(self) -> bool:
        """TTS and RVC both serve: a job started now would not fail on a part still starting. While idle
        (models unloaded on purpose) a job may start: its hold wakes them."""
        if self.idle is not None and self.idle.idle:
            return True
        if not self.voice.ready():
            return False
        try:
            return await asyncio.wait_for(self.speech.ready(), timeout=2.0)
        except (TimeoutError, OSError):
            return False

    async def _unload_models(self) -> None:
        results = await asyncio.gather(self.speech.unload_models(), self.voice.suspend(), return_exceptions=True)
        failures = [str(result) for result in results if isinstance(result, BaseException)]
        if failures:
            raise VoiceError("; ".join(failures))

    async def _load_models(self) -> None:
        """Triton's models and a new worker pool, at the same time (each takes seconds)."""
        results = await asyncio.gather(self.speech.load_models(), self.voice.start(), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    def seed_default_voice(self) -> None:
        """Register the voice "default" the first time the service starts with no saved voice.

        Its clip is the stored default reference (``POST /config/reference-audio``)
        when there is one, else, on demo assets, a generated speech-like clip;
        its RVC model is RVC_MODEL. A marker in the database records that this
        happened, so deleting "default" later is not undone by the next start
        (of this gateway or another one on the same database).
        """
        if self.markers.get(SEEDED_MARKER) is not None or self.voices.names():
            return
        stored = self.store.reference()
        if stored is not None:
            clip, source = resample(stored.wav, stored.sample_rate, REFERENCE_RATE), "the stored default reference"
        elif self.assets.demo:
            clip, source = demo_reference_clip(), "a generated clip (demo assets)"
        else:
            logger.info("no saved voices yet: POST /voices to save one (or store a default reference clip)")
            return
        try:
            self.voices.create(DEFAULT_VOICE, clip, description=f"registered at first start from {source}")
        except StorageUnavailable:
            raise
        except VoiceError as exc:  # e.g. Conflict: another gateway registered it first
            logger.warning("could not register the default voice: %s", exc)
            return
        self.markers.set(SEEDED_MARKER, f"default voice registered from {source}")

    def check_rvc_model(self, name: str) -> str:
        """An RVC model name (``X`` or ``X.pth``) -> its stem; InvalidInput if no such .pth in WEIGHTS_DIR."""
        try:
            return resolve_voice(self.settings.weights_dir, name).name
        except VoiceError as exc:
            models = ", ".join(list_voices(self.settings.weights_dir)) or "none"
            raise InvalidInput(
                f"rvc_model {name!r} is not an RVC model in WEIGHTS_DIR: name a .pth file there (available: "
                f"{models})", field="rvc_model",
            ) from exc

    async def select_voice(self, voice: str | None, rvc_model: str | None = None) -> VoiceSelection:
        """Resolve a request's voice fields and make sure the RVC model it needs is on the workers.

        ``voice`` names a saved voice; when none has that name it is taken as
        an RVC model name (the seed's meaning of the field). ``rvc_model``
        overrides the voice's model. Unknown names are a 400 listing both kinds.
        """
        model = await asyncio.to_thread(self.check_rvc_model, rvc_model) if rvc_model else None
        selection = VoiceSelection(rvc_model=model)
        if voice:
            check_voice_name(voice, field="voice")
            saved = await asyncio.to_thread(self.voices.find, voice)
            if saved is not None:
                selection = VoiceSelection(
                    voice, saved.reference_wav, model or saved.record.rvc_model, saved.overrides(),
                    saved.global_tokens, saved.semantic_tokens,
                )
                self.keep_clip_tokens(voice, saved)
            elif voice.removesuffix(".pth") in list_voices(self.settings.weights_dir):
                if model is not None and model != voice.removesuffix(".pth"):
                    raise InvalidInput(
                        f"voice {voice!r} is an RVC model and rvc_model names another ({model!r}); send one",
                        field="voice",
                    )
                selection = VoiceSelection(rvc_model=voice.removesuffix(".pth"))
            else:
                known = await asyncio.to_thread(self.describe_voices)
                raise InvalidInput(f"unknown voice {voice!r}; {known}", field="voice")
        if selection.rvc_model is not None:
            try:
                await self.voice.ensure_voice(selection.rvc_model)
            except VoiceError as exc:
                if model is not None and exc.field == "voice":  # the model came from the rvc_model field
                    exc.field = "rvc_model"
                raise
        return selection

    def keep_clip_tokens(self, name: str, saved: SavedVoice) -> None:
        """The first time a saved clip is used, tokenize it once in the background and store its tokens
        with the voice: later requests (on any gateway, after restarts) send them instead of the clip, so
        Triton never tokenizes it again. This request still sends the clip: nothing waits for this."""
        if (saved.tokens is not None or saved.reference_wav.size == 0 or name in self._tokenizing
                or not isinstance(self.speech, ClipTokenizer)):
            return
        self._tokenizing.add(name)
        task = asyncio.create_task(self._store_clip_tokens(name, saved, self.speech))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _store_clip_tokens(self, name: str, saved: SavedVoice, tokenizer: ClipTokenizer) -> None:
        try:
            global_tokens, semantic = await tokenizer.tokenize(saved.reference_wav)
            tokens = SpeakerTokens(tuple(int(t) for t in global_tokens), tuple(int(t) for t in semantic))
            if await asyncio.to_thread(self.voices.store_tokens, name, saved.record.reference_sha256, tokens):
                logger.info("saved voice %s: its clip's speaker tokens are stored (tokenized once)", name)
        except VoiceError as exc:  # Triton or the database down: the next request tries again
            logger.warning("saved voice %s: could not store its clip's speaker tokens: %s", name, exc.message)
        finally:
            self._tokenizing.discard(name)

    async def stored_defaults(self) -> SynthesisDefaults:
        """The stored defaults; the last ones read when the database is down (logged), so synthesis goes on."""
        try:
            self._last_defaults = await asyncio.to_thread(self.store.get)
        except StorageUnavailable as exc:
            logger.warning("using the stored defaults last read: %s", exc.message)
        return self._last_defaults

    def saved_names(self) -> list[str] | None:
        """The saved voices' names; None when the database is down (for messages and /status, never a 503)."""
        try:
            return self.voices.names()
        except StorageUnavailable:
            return None

    def describe_voices(self) -> str:
        """Blocking (a database query): call it off the event loop."""
        names = self.saved_names()
        saved = "unknown (the storage database is down)" if names is None else ", ".join(names) or "none (POST /voices)"
        models = ", ".join(list_voices(self.settings.weights_dir)) or "none"
        return f"saved voices: {saved}; RVC models in WEIGHTS_DIR: {models}"

    async def close(self) -> None:
        await self.jobs.close()
        if self.idle is not None:
            await self.idle.close()
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(self.speech.close(), self.voice.close(), *self._background, return_exceptions=True)
        self.store.database.close()

    async def storage_ready(self) -> bool:
        try:
            await asyncio.wait_for(asyncio.to_thread(self.store.database.check), timeout=3.0)
        except (TimeoutError, StorageUnavailable):
            return False
        return True

    async def health(self) -> HealthReport:
        if self.idle is not None and self.idle.idle:
            return await self._idle_health(self.idle)

        async def tts() -> bool:
            try:
                return await asyncio.wait_for(self.speech.ready(), timeout=2.0)
            except (TimeoutError, OSError):
                return False

        tts_ready, storage_ready = await asyncio.gather(tts(), self.storage_ready())
        rvc_ready = self.voice.ready()
        problems = []
        if not tts_ready:
            problems.append(
                f"Spark-TTS on Triton ({self.settings.triton_grpc_url}) is not ready: synthesis answers 503 "
                "until it is back (the gateway reconnects by itself)"
            )
        if not rvc_ready:
            problems.append("no RVC worker is alive: RVC answers 503 until the supervisor has respawned one")
        if not storage_ready:
            problems.append(
                f"the storage database ({self.store.database.describe()}) is unreachable: saved voices and stored "
                "defaults answer 503; synthesis with an uploaded clip still works"
            )
        if self.assets.demo:
            problems.append(DEMO_NOTICE)
        return HealthReport(tts_ready, rvc_ready, self.assets.demo, tuple(problems), storage_ready)

    async def _idle_health(self, idle: IdleUnloader) -> HealthReport:
        """Idle: nothing to ask Triton or the workers (they are unloaded on purpose), only the database."""
        storage_ready = await self.storage_ready()
        problems = [
            f"idle: the models were unloaded after {idle.idle_s:g} s without a request (IDLE_UNLOAD_S); the next "
            "request loads them and waits for them"
            + (f" (the last load took {idle.last_load_s:.1f} s)" if idle.last_load_s is not None else "")
        ]
        if not storage_ready:
            problems.append(f"the storage database ({self.store.database.describe()}) is unreachable")
        if self.assets.demo:
            problems.append(DEMO_NOTICE)
        return HealthReport(False, False, self.assets.demo, tuple(problems), storage_ready, idle=True)

    async def speaker_cache(self) -> dict[str, Any]:
        """The speaker-token caches inside Triton, per model, or why they cannot be shown."""
        try:
            stats = await self.speech.speaker_cache()
        except VoiceError as exc:
            return {"error": exc.message}
        return {model: asdict(entry) for model, entry in stats.items()}

    def placements(self) -> tuple[PartPlacement, ...]:
        """Where every part runs and in which dtype: the gateway (the CPU, no torch: it runs no model),
        Triton's models as their prepared configs say, each RVC worker as it said when ready."""
        return (PartPlacement("gateway", "cpu", None), *self.speech.placements(), *self.voice.placements())

    def profile_report(self) -> dict[str, str]:
        """Which RVC inference profile converts a request that names none, and where that comes from.

        A saved voice's own profile still wins for that voice, and a request's own for that request.
        """
        stored = self._last_defaults.rvc_profile
        if stored is not None:
            return {"converts": stored, "source": "stored defaults (POST /config)", "setting": self.settings.rvc_profile}
        return {"converts": self.settings.rvc_profile, "source": "RVC_PROFILE", "setting": self.settings.rvc_profile}

    def status(self) -> dict[str, Any]:
        """Blocking (the saved voices are a database query): call it off the event loop."""
        return {
            "uptime_s": round(time.time() - self.started_at, 1),
            "requests": dict(self.counts),
            "assets": {
                "demo": self.assets.demo,
                "notice": DEMO_NOTICE if self.assets.demo else "real checkpoints",
                "missing": self.assets.missing,
            },
            "models": {
                "spark_tts": str(self.settings.spark_model_dir),
                "rvc_default_voice": self.settings.rvc_model,
            },
            "rvc_profile": self.profile_report(),
            "saved_voices": self.saved_names(),
            "storage": self.store.database.describe(),
            "triton": self.speech.describe(),
            "rvc": self.voice.describe(),
            "placement": [asdict(part) for part in self.placements()],
            "jobs": {"running_here": list(self.jobs.running), "concurrency": self.jobs.concurrency},
            "idle_unload": asdict(self.idle.snapshot()) if self.idle is not None else {"idle_unload_s": 0, "state": "off"},
        }


def stream_config(settings: Settings) -> StreamConfig:
    """The RVC stream geometry of chunk mode: StreamConfig's defaults, with the RVC_STREAM_* values that are set."""
    try:
        return StreamConfig(**settings.stream_geometry)
    except ValueError as exc:
        raise ConfigError(f"invalid RVC_STREAM_* configuration: {exc}") from exc
