"""Run the real ``tritonserver`` as a managed child process.

Two installations are supported. In NVIDIA's image ``tritonserver`` is on
PATH with its python backend in ``/opt/tritonserver/backends``. Everywhere
else the binary comes from the installed ``nvidia-pytriton`` wheel, whose
python backend needs the stub built for the running Python copied beside it
(docs/triton_runtime.md, "Running tritonserver as a managed subprocess"). The traps this module exists for:

* the stub's embedded interpreter ignores PYTHONPATH: it finds the venv via
  ``<venv>/bin`` first on PATH, and needs this interpreter's libdir first on
  LD_LIBRARY_PATH or it links the system libpython (a pyenv build). A libdir
  the loader searches anyway (``/usr/lib/x86_64-linux-gnu`` for the image's
  Python) is never prepended: NVIDIA's images keep their cuDNN and NCCL
  there, and LD_LIBRARY_PATH outranks the RUNPATH by which torch finds its
  own, so the first convolution would fail on a cuDNN version mismatch;
* a ``triton/`` folder in the cwd breaks torch inside the stub, so the server
  runs in its own work directory;
* an open gRPC stream keeps the server alive after SIGTERM, so ``stop``
  escalates to SIGKILL of the whole process group;
* stubs map ``/dev/shm`` regions; each server gets its own region prefix so
  that leftovers can be removed without touching another server's;
* a supervisor killed with SIGKILL runs no cleanup, so the server is started
  with the parent-death signal armed (``children.py``): it dies with the
  thread that started it, and its stubs follow it.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO

import httpx

from rvc.device import driver_present
from rvc.errors import ConfigError, TritonStartError
from rvc.grpc.children import die_with_parent, group_members, kill_group
from rvc.settings import TRITON_STARTUP_TIMEOUT_DEFAULT_S

__all__ = [
    "TritonInstallation",
    "TritonServer",
    "TritonServerConfig",
    "library_search_path",
    "locate_tritonserver",
    "server_environment",
    "system_library_dirs",
]

logger = logging.getLogger(__name__)

_SHM_DIR = Path("/dev/shm")
_NVIDIA_BACKENDS = Path("/opt/tritonserver/backends")
_LD_SO_CONF = Path("/etc/ld.so.conf")


@dataclass(frozen=True)
class TritonServerConfig:
    """How to start one tritonserver. Ports must be free; ``work_dir`` holds the backend copy and log."""

    model_repository: Path
    host: str = "127.0.0.1"
    grpc_port: int = 8001
    http_port: int = 8000
    metrics_port: int = 8002
    work_dir: Path | None = None
    startup_timeout_s: float = TRITON_STARTUP_TIMEOUT_DEFAULT_S  # TRITON_STARTUP_TIMEOUT_S's default
    stop_timeout_s: float = 20.0
    torch_threads: int = 1
    cpu_only: bool | None = None  # None: decide from whether an NVIDIA driver is present
    log_verbose: int = 0
    # --model-control-mode=explicit with every model loaded at start: the repository API may then unload
    # and load them (idle unload); the default mode refuses both
    explicit_model_control: bool = False
    extra_args: tuple[str, ...] = ()
    extra_env: dict[str, str] = field(default_factory=dict)
    # SIGKILL the server when the thread that started it ends (the process killed included): start it
    # from the main thread or one that outlives it. Off only for a server meant to outlive its starter.
    die_with_starter: bool = True

    def __post_init__(self) -> None:
        for name in ("grpc_port", "http_port", "metrics_port"):
            port = getattr(self, name)
            if not 0 < port < 65536:
                raise ValueError(f"{name} must be in 1..65535, got {port}")
        if len({self.grpc_port, self.http_port, self.metrics_port}) != 3:
            raise ValueError("grpc_port, http_port and metrics_port must differ")
        if self.startup_timeout_s <= 0 or self.stop_timeout_s <= 0:
            raise ValueError("startup_timeout_s and stop_timeout_s must be positive")


@dataclass(frozen=True)
class TritonInstallation:
    """Where the binary and python backend live, and what the server's environment needs."""

    binary: Path
    backend_dir: Path | None  # a folder holding `python/`; None: the binary's built-in default
    stub: Path | None  # per-Python stub to place beside the backend (pytriton only)
    library_dirs: tuple[Path, ...]
    bundled: bool


def locate_tritonserver() -> TritonInstallation:
    """Find NVIDIA's ``tritonserver`` on PATH, else the one inside ``nvidia-pytriton``."""
    on_path = shutil.which("tritonserver")
    if on_path and not _inside_pytriton(Path(on_path)):
        return TritonInstallation(
            binary=Path(on_path),
            backend_dir=_NVIDIA_BACKENDS if _NVIDIA_BACKENDS.is_dir() else None,
            stub=None,
            library_dirs=(),
            bundled=False,
        )
    try:
        import pytriton
    except ImportError as exc:
        raise ConfigError("no tritonserver on PATH and nvidia-pytriton is not installed") from exc
    package_root = Path(pytriton.__file__).resolve().parent
    server_root = package_root / "tritonserver"
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = server_root / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.is_file():
        raise ConfigError(f"nvidia-pytriton ships no python-backend stub for Python {version} ({stub})")
    return TritonInstallation(
        binary=server_root / "bin" / "tritonserver",
        backend_dir=server_root / "backends",
        stub=stub,
        library_dirs=(package_root.parent / "nvidia_pytriton.libs",),
        bundled=True,
    )


def _inside_pytriton(path: Path) -> bool:
    return "pytriton" in path.resolve().parts


def _prepare_backends(installation: TritonInstallation, work_dir: Path) -> Path | None:
    """Copy pytriton's python backend plus this Python's stub into ``work_dir/backends``."""
    if installation.stub is None or installation.backend_dir is None:
        return installation.backend_dir
    target = work_dir / "backends" / "python"
    target.mkdir(parents=True, exist_ok=True)
    source = installation.backend_dir / "python"
    files = {name: source / name for name in ("libtriton_python.so", "triton_python_backend_utils.py")}
    files["triton_python_backend_stub"] = installation.stub
    for name, origin in files.items():
        # Copy beside, then rename: a stub still running from an earlier server keeps its old inode.
        staging = target / f".{name}.{os.getpid()}.tmp"
        shutil.copy2(origin, staging)
        os.replace(staging, target / name)
    return target.parent


def system_library_dirs(ld_so_conf: Path = _LD_SO_CONF, multiarch: str | None = None) -> frozenset[Path]:
    """Folders the dynamic loader searches without LD_LIBRARY_PATH: its trusted defaults plus ld.so.conf.

    Resolved, so ``/lib/x86_64-linux-gnu`` and ``/usr/lib/x86_64-linux-gnu`` are one folder on a
    merged-/usr system. ``include`` lines (globs, relative to the including file) are followed.
    """
    arch = multiarch if multiarch is not None else (sysconfig.get_config_var("MULTIARCH") or "")
    folders = ["/lib", "/usr/lib", "/lib64", "/usr/lib64"]
    if arch:
        folders += [f"/lib/{arch}", f"/usr/lib/{arch}"]
    folders += _ld_so_conf_dirs(ld_so_conf, seen=set())
    return frozenset(Path(os.path.realpath(folder)) for folder in folders)


def _ld_so_conf_dirs(path: Path, seen: set[Path]) -> list[str]:
    if path in seen or not path.is_file():
        return []
    seen.add(path)
    folders: list[str] = []
    for raw in path.read_text(errors="replace").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("include"):
            for pattern in line.split()[1:]:
                pattern_path = Path(pattern) if pattern.startswith("/") else path.parent / pattern
                for included in sorted(pattern_path.parent.glob(pattern_path.name)):
                    folders += _ld_so_conf_dirs(included, seen)
        elif line.startswith("/"):
            folders.append(line.split()[0])
    return folders


def library_search_path(
    python_libdir: str | None,
    installation_dirs: tuple[Path, ...],
    inherited: str | None,
    system_dirs: frozenset[Path],
) -> str:
    """LD_LIBRARY_PATH for tritonserver and its stubs: this Python's libdir (unless the loader
    searches it anyway), the installation's libraries, then what was inherited, unchanged.
    """
    parts: list[str] = []
    if python_libdir and Path(os.path.realpath(python_libdir)) not in system_dirs:
        parts.append(python_libdir)
    parts += [str(folder) for folder in installation_dirs]
    if inherited:
        parts.append(inherited)
    return os.pathsep.join(part for part in parts if part)


def server_environment(
    installation: TritonInstallation,
    torch_threads: int,
    extra: dict[str, str],
    *,
    python_libdir: str | None = None,
    system_dirs: frozenset[Path] | None = None,
) -> dict[str, str]:
    """The environment that lets the stub find this venv and the right libpython.

    ``python_libdir`` defaults to this interpreter's ``LIBDIR``, ``system_dirs`` to the loader's
    folders on this machine; tests pass both to compute the environment of another machine.
    """
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # ignored by the stub anyway; never let it half-work
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    libdir = python_libdir if python_libdir is not None else sysconfig.get_config_var("LIBDIR")
    search_path = library_search_path(
        libdir,
        installation.library_dirs,
        env.get("LD_LIBRARY_PATH"),
        system_dirs if system_dirs is not None else system_library_dirs(),
    )
    if search_path:
        env["LD_LIBRARY_PATH"] = search_path
    else:
        env.pop("LD_LIBRARY_PATH", None)  # an empty entry would mean the cwd
    env["OMP_NUM_THREADS"] = str(torch_threads)
    env["MKL_NUM_THREADS"] = str(torch_threads)
    env.update(extra)
    return env


class TritonServer:
    """One tritonserver child process: ``with TritonServer(config) as server: ...``."""

    def __init__(self, config: TritonServerConfig, installation: TritonInstallation | None = None) -> None:
        self.config = config
        self._installation = installation
        self._process: subprocess.Popen[bytes] | None = None
        self._owns_work_dir = config.work_dir is None
        self._work_dir = config.work_dir
        self._log_file: IO[bytes] | None = None
        self.shm_prefix = f"voice_triton_{os.getpid()}_{uuid.uuid4().hex[:8]}_"

    # ------------------------------------------------------------------ addresses
    @property
    def grpc_url(self) -> str:
        return f"{self.config.host}:{self.config.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"http://{self.config.host}:{self.config.http_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.config.host}:{self.config.metrics_port}/metrics"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def log_path(self) -> Path:
        if self._work_dir is None:
            raise RuntimeError("the server has not been started")
        return self._work_dir / "tritonserver.log"

    def log_text(self, tail_lines: int | None = 200) -> str:
        """The server's log (its last ``tail_lines`` lines), for error messages and tests."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except (OSError, RuntimeError):
            return ""
        return "\n".join(lines[-tail_lines:] if tail_lines else lines)

    # ------------------------------------------------------------------ lifecycle
    def command(self, backend_dir: Path | None, cpu_only: bool) -> list[str]:
        config = self.config
        installation = self._installation_or_locate()
        args = [
            str(installation.binary),
            f"--model-repository={Path(config.model_repository).resolve()}",
            f"--grpc-address={config.host}",
            f"--grpc-port={config.grpc_port}",
            f"--http-address={config.host}",
            f"--http-port={config.http_port}",
            f"--metrics-address={config.host}",
            f"--metrics-port={config.metrics_port}",
            "--disable-auto-complete-config",
            f"--exit-timeout-secs={max(1, int(config.stop_timeout_s // 2))}",
            f"--backend-config=python,shm-region-prefix-name={self.shm_prefix}",
            "--log-info=true",
            f"--log-verbose={config.log_verbose}",
        ]
        if config.explicit_model_control:
            args += ["--model-control-mode=explicit", "--load-model=*"]
        if backend_dir is not None:
            args.append(f"--backend-directory={backend_dir}")
        if cpu_only:
            args += ["--pinned-memory-pool-byte-size=0", "--allow-gpu-metrics=false"]
        return args + list(config.extra_args)

    def _installation_or_locate(self) -> TritonInstallation:
        if self._installation is None:
            self._installation = locate_tritonserver()
        return self._installation

    def start(self, *, cancel: threading.Event | None = None) -> TritonServer:
        """Start the server and block until every model is ready; raise TritonStartError with the log if not.

        ``cancel`` set while the models load stops the server and raises: a supervisor asked to stop
        must not wait out a model load first.
        """
        if self._process is not None:
            raise RuntimeError("this TritonServer was already started")
        repository = Path(self.config.model_repository)
        if not repository.is_dir():
            raise ConfigError(f"Triton model repository {repository} does not exist")
        installation = self._installation_or_locate()
        if self._work_dir is None:
            self._work_dir = Path(tempfile.mkdtemp(prefix="tritonserver-"))
        self._work_dir.mkdir(parents=True, exist_ok=True)
        backend_dir = _prepare_backends(installation, self._work_dir)
        cpu_only = self.config.cpu_only if self.config.cpu_only is not None else not driver_present()
        command = self.command(backend_dir, cpu_only)
        env = server_environment(installation, self.config.torch_threads, self.config.extra_env)
        logger.info("starting tritonserver %s (repository %s)", installation.binary, repository)
        if self.log_path.is_file():  # an earlier server's log in this work dir: keep it for the post-mortem
            os.replace(self.log_path, self.log_path.with_suffix(".previous.log"))
        self._log_file = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self._process = subprocess.Popen(
            command,
            cwd=self._work_dir,  # never the repo root: its triton/ folder breaks torch in the stub
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # the backend stub processes join this group, so stop() reaches them
            preexec_fn=die_with_parent() if self.config.die_with_starter else None,
        )
        try:
            self._wait_ready(cancel)
        except BaseException:
            self.stop()
            raise
        logger.info("tritonserver ready on %s (pid %s)", self.grpc_url, self._process.pid)
        return self

    def _wait_ready(self, cancel: threading.Event | None) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self.config.startup_timeout_s
        with httpx.Client(timeout=1.0) as client:
            while True:
                code = self._process.poll()
                if code is not None:
                    raise TritonStartError(
                        f"tritonserver exited with code {code} before it was ready; its log:\n{self.log_text(60)}"
                    )
                if self.is_ready(client):
                    return
                if cancel is not None and cancel.is_set():
                    raise TritonStartError("tritonserver start cancelled: the service is stopping")
                if time.monotonic() > deadline:
                    raise TritonStartError(
                        f"tritonserver not ready after {self.config.startup_timeout_s:g} s; its log:\n"
                        f"{self.log_text(60)}"
                    )
                time.sleep(0.1)

    def is_ready(self, client: httpx.Client | None = None) -> bool:
        """True when the server answers ``/v2/health/ready`` (all models loaded)."""
        url = f"{self.http_url}/v2/health/ready"
        try:
            if client is not None:
                return client.get(url).status_code == 200
            return httpx.get(url, timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def wait(self, timeout_s: float) -> int | None:
        """The server's exit code once it has exited (reaping it), or None if it still runs after ``timeout_s``."""
        if self._process is None:
            raise RuntimeError("the server has not been started")
        try:
            return self._process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL of the whole group after ``stop_timeout_s``; then remove leftovers.

        Returns the server's exit code (None if it was never started).
        """
        process = self._process
        if process is None:
            return None
        died = process.poll() is not None
        if not died:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(self.config.stop_timeout_s)
            except subprocess.TimeoutExpired:
                logger.warning("tritonserver ignored SIGTERM for %.0f s; killing it", self.config.stop_timeout_s)
                kill_group(process.pid)
                process.wait()
        # The stubs of a server that died have nothing left to finish: no grace for them.
        self._reap_group(process.pid, grace_s=0.0 if died else 3.0)
        self._remove_shared_memory()
        if self._owns_work_dir and self._work_dir is not None:
            # A temp work dir outlives stop() for its log (post-mortems read it); the 2.8 MB copy of the
            # python backend is of no use to a stopped server (a restart is a new TritonServer).
            shutil.rmtree(self._work_dir / "backends", ignore_errors=True)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        return process.returncode

    def _reap_group(self, group_id: int, grace_s: float) -> None:
        """Stubs exit by themselves once the server is gone; anything still there after ``grace_s`` is killed."""
        deadline = time.monotonic() + grace_s
        while group_members(group_id) and time.monotonic() < deadline:
            time.sleep(0.1)
        if group_members(group_id):
            kill_group(group_id)
            deadline = time.monotonic() + 3.0
            while group_members(group_id) and time.monotonic() < deadline:
                time.sleep(0.05)

    def _remove_shared_memory(self) -> None:
        for segment in _SHM_DIR.glob(f"{self.shm_prefix}*"):
            logger.info("removing leftover shared memory %s", segment)
            segment.unlink(missing_ok=True)

    def shared_memory_segments(self) -> list[Path]:
        """This server's ``/dev/shm`` regions (the python backend's, by their unique prefix)."""
        return sorted(_SHM_DIR.glob(f"{self.shm_prefix}*"))

    def group_members(self) -> list[int]:
        """PIDs of the server and its stubs (they share the server's process group)."""
        return group_members(self._process.pid) if self._process is not None else []

    def __enter__(self) -> TritonServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
        if self._owns_work_dir and self._work_dir is not None:
            shutil.rmtree(self._work_dir, ignore_errors=True)

