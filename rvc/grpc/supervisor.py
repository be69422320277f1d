"""Keep one tritonserver running: restart it with backoff when it dies, give up after a bounded number.

The launcher serves the API in the same process as it supervises Triton, so
a Triton death must not end the process: the gateway keeps answering (what
does not need Triton still works) while the server is started again. A
server that keeps dying is not helped by more restarts, so after
``max_restarts`` within ``window_s`` the supervisor gives up and says why;
the launcher then exits non-zero for its own supervisor (systemd, Docker,
Kubernetes) to act on.

Every server is started from the supervisor's one thread, which outlives
them all: they are armed to die with the thread that started them
(``children.py``), so they die with the launcher too, even under SIGKILL.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from rvc.errors import VoiceError
from rvc.grpc.launcher import TritonServer, TritonServerConfig

__all__ = ["RestartPolicy", "SupervisorState", "TritonSupervisor", "describe_exit"]

logger = logging.getLogger(__name__)

_LOG_TAIL_LINES = 40
_POLL_S = 0.2


@dataclass(frozen=True)
class RestartPolicy:
    """At most ``max_restarts`` restarts within any ``window_s``. The first restart in the window is
    immediate: one death (the OOM killer, an operator's kill) is the common case, and every second
    before the restart is a second of 503s. Only a server that dies again waits, ``backoff_s`` and then
    doubling, at most ``backoff_max_s``. ``max_restarts=0``: a death is final."""

    max_restarts: int = 5
    window_s: float = 600.0
    backoff_s: float = 1.0
    backoff_max_s: float = 30.0

    def __post_init__(self) -> None:
        if self.max_restarts < 0:
            raise ValueError(f"max_restarts must be >= 0, got {self.max_restarts}")
        if self.window_s <= 0 or self.backoff_s < 0 or self.backoff_max_s < self.backoff_s:
            raise ValueError(
                f"need window_s > 0 and 0 <= backoff_s <= backoff_max_s, got window_s={self.window_s}, "
                f"backoff_s={self.backoff_s}, backoff_max_s={self.backoff_max_s}"
            )

    def delay_s(self, recent_restarts: int) -> float:
        """The wait before the next restart, when ``recent_restarts`` already happened within the window."""
        if recent_restarts == 0:
            return 0.0
        return float(min(self.backoff_max_s, self.backoff_s * 2 ** (recent_restarts - 1)))


class SupervisorState(Enum):
    STARTING = "starting"
    READY = "ready"
    RESTARTING = "restarting"  # the server died; waiting out the backoff, or loading models again
    GAVE_UP = "gave_up"
    STOPPED = "stopped"


def describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class TritonSupervisor:
    """``start()`` returns once the first server is ready (or raises its TritonStartError); ``stop()`` ends it.

    ``on_give_up(message)`` is called from the supervisor's thread when the restarts are spent.
    """

    def __init__(
        self,
        config: TritonServerConfig,
        policy: RestartPolicy,
        *,
        on_give_up: Callable[[str], None],
    ) -> None:
        if not config.die_with_starter:
            raise ValueError("a supervised tritonserver must die with its supervisor (die_with_starter=True)")
        self.config = config
        self.policy = policy
        self._on_give_up = on_give_up
        self._stop = threading.Event()
        self._first_outcome = threading.Event()
        self._first_error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._server: TritonServer | None = None
        self._restart_times: list[float] = []
        self.state = SupervisorState.STARTING
        self.restarts = 0
        self.failure: str | None = None

    @property
    def server(self) -> TritonServer | None:
        """The current server (None between a death and the next start)."""
        return self._server

    def start(self) -> TritonSupervisor:
        if self._thread is not None:
            raise RuntimeError("this supervisor was already started")
        self._thread = threading.Thread(target=self._run, name="triton-supervisor", daemon=True)
        self._thread.start()
        self._first_outcome.wait()
        if self._first_error is not None:
            self._thread.join()
            raise self._first_error
        return self

    def stop(self) -> None:
        """Stop supervising and stop the server (gracefully: the supervisor's thread does it, then ends)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()

    # ------------------------------------------------------------------ the supervisor's thread
    def _run(self) -> None:
        try:
            self._server = TritonServer(self.config).start(cancel=self._stop)
        except BaseException as exc:  # handed to start(), which raises it in the caller's thread
            self._first_error = exc
            self.state = SupervisorState.STOPPED
            self._first_outcome.set()
            return
        self.state = SupervisorState.READY
        self._first_outcome.set()
        try:
            self._supervise()
        finally:
            if self._server is not None:
                self._server.stop()
            if self.state is not SupervisorState.GAVE_UP:
                self.state = SupervisorState.STOPPED

    def _supervise(self) -> None:
        died_at: float | None = None
        while not self._stop.is_set():
            server = self._server
            if server is not None:
                code = server.wait(_POLL_S)
                if code is None:
                    continue
                died_at = time.monotonic()
                logger.error("tritonserver (pid %s) died: %s; the last lines of its log:\n%s",
                             server.pid, describe_exit(code), server.log_text(_LOG_TAIL_LINES))
                server.stop()  # its stubs and shared memory go now, not when they notice
                self._server = None
            self.state = SupervisorState.RESTARTING
            now = time.monotonic()
            self._restart_times = [t for t in self._restart_times if now - t < self.policy.window_s]
            recent = len(self._restart_times)
            if recent >= self.policy.max_restarts:
                self._give_up(recent)
                return
            delay = self.policy.delay_s(recent)
            logger.warning("restarting tritonserver %s (restart %d of at most %d within %g s)",
                           f"in {delay:.1f} s" if delay else "now", recent + 1, self.policy.max_restarts,
                           self.policy.window_s)
            if self._stop.wait(delay):
                return
            self._restart_times.append(time.monotonic())
            self.restarts += 1
            try:
                self._server = TritonServer(self.config).start(cancel=self._stop)
            except VoiceError as exc:  # TritonStartError carries the log; ConfigError the missing repository
                if not self._stop.is_set():
                    logger.error("tritonserver restart %d failed: %s", self.restarts, exc)
                continue
            self.state = SupervisorState.READY
            since = f" {time.monotonic() - died_at:.1f} s after it died" if died_at is not None else ""
            logger.warning("tritonserver ready again (pid %s, restart %d)%s", self._server.pid, self.restarts, since)

    def _give_up(self, recent: int) -> None:
        self.failure = (
            f"tritonserver died again after {recent} restarts within {self.policy.window_s:g} s (the most "
            f"TRITON_RESTARTS allows); giving up. Its log: {self.config.work_dir or 'its work directory'}"
            "/tritonserver.log"
        )
        self.state = SupervisorState.GAVE_UP
        logger.error("%s", self.failure)
        self._on_give_up(self.failure)
