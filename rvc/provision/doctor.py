"""Checks behind ``tools/setup_environment.py``: what this machine lacks for the service, and the fix.

Each check returns ``Check(name, status, detail, fix)``. The module must work
before the environment is installed (run by a bare ``python3``), so anything
beyond the standard library (pydantic settings, the Triton launcher) is
imported inside the check that needs it, and its absence is itself reported.
"""

from __future__ import annotations

import enum
import importlib.metadata
import re
import shutil
import socket
import subprocess
import sys
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rvc.device import TorchFacts
    from rvc.settings import Settings

__all__ = [
    "Check",
    "Outcome",
    "check_assets",
    "check_device",
    "check_numpy",
    "check_packages",
    "check_ports",
    "check_python",
    "check_settings",
    "check_tritonserver",
    "fix_commands",
    "format_table",
    "pinned_requirements",
    "run_checks",
]

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SETUP_FIX = "bash scripts/setup_env.sh"
_PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*==\s*([^\s;,]+)\s*$")


class Outcome(enum.Enum):
    OK = "ok"
    WARN = "warn"
    FAIL = "FAIL"


@dataclass(frozen=True)
class Check:
    name: str
    status: Outcome
    detail: str
    fix: str = ""


def check_python(version: Sequence[int] | None = None) -> Check:
    major, minor, *_ = version or sys.version_info
    found = f"{major}.{minor} ({sys.executable})"
    if (major, minor) == (3, 11):
        return Check("python", Outcome.OK, found)
    return Check("python", Outcome.FAIL, f"{found}; the pins need 3.11",
                 "install Python 3.11, then PYTHON=/path/to/python3.11 bash scripts/setup_env.sh")


def pinned_requirements(pyproject: Path, *, extras: Sequence[str] = ("dev",)) -> dict[str, str]:
    """``{distribution name: pinned version}`` of every ``==`` pin in pyproject.toml."""
    project = tomllib.loads(pyproject.read_text())["project"]
    lines = list(project.get("dependencies", []))
    for extra in extras:
        lines += project.get("optional-dependencies", {}).get(extra, [])
    pins = {}
    for line in lines:
        match = _PIN.match(line)
        if match:
            pins[match.group(1)] = match.group(2)
    return pins


def _matches_pin(installed: str, pinned: str) -> bool:
    # PEP 440: "==2.13.0" matches "2.13.0+cpu" (a local label) unless the pin names one itself.
    return installed == pinned or ("+" not in pinned and installed.split("+", 1)[0] == pinned)


def check_packages(pyproject: Path = PROJECT_ROOT / "pyproject.toml") -> Check:
    wrong, missing = [], []
    pins = pinned_requirements(pyproject)
    for name, pinned in sorted(pins.items()):
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(name)
            continue
        if not _matches_pin(installed, pinned):
            wrong.append(f"{name} {installed} (pinned {pinned})")
    if not missing and not wrong:
        return Check("packages", Outcome.OK, f"{len(pins)} pins of pyproject.toml installed")
    problems = ([f"missing: {_some(missing)}"] if missing else []) + (
        [f"other versions: {_some(wrong)}"] if wrong else [])
    return Check("packages", Outcome.FAIL, "; ".join(problems), SETUP_FIX)


def _some(names: Sequence[str], shown: int = 6) -> str:
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def check_numpy() -> Check:
    try:
        version = importlib.metadata.version("numpy")
    except importlib.metadata.PackageNotFoundError:
        return Check("numpy<2", Outcome.FAIL, "numpy is not installed", SETUP_FIX)
    if int(version.split(".", 1)[0]) >= 2:
        return Check("numpy<2", Outcome.FAIL,
                     f"numpy {version}: the bundled Triton python backend returns empty tensors under numpy 2",
                     "pip install numpy==1.26.4 (or bash scripts/setup_env.sh)")
    return Check("numpy<2", Outcome.OK, f"numpy {version}")


def _nvidia_gpus() -> list[str]:
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        result = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
                                capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.strip() for line in result.stdout.splitlines() if line.strip()] if result.returncode == 0 else []


def _torch_facts() -> TorchFacts | None:
    """torch's own view (build, CUDA, GPUs), or None when torch is not installed yet."""
    try:
        from rvc.device import torch_facts

        return torch_facts()
    except ImportError:
        return None


def check_device(
    requested: str = "auto",
    gpus: Callable[[], list[str]] = _nvidia_gpus,
    facts: Callable[[], TorchFacts | None] = _torch_facts,
) -> Check:
    """A GPU is fine only when torch can use it: a CUDA build (torch.version.cuda set) that sees it.

    The decision is the service's own (``rvc.device.resolve_device``), so this check fails exactly
    when the service would refuse to start.
    """
    from rvc.device import resolve_device, supports_bf16
    from rvc.errors import ConfigError

    found = gpus()
    seen = f"GPU: {'; '.join(found)}; " if found else ""
    torch = facts()
    if torch is None:
        if not found and requested != "cuda":
            return Check("device", Outcome.OK, "CPU only (no NVIDIA GPU visible); torch is not installed yet")
        return Check("device", Outcome.FAIL, f"{seen}torch is not installed, so nothing can use the GPU yet",
                     SETUP_FIX + " (then install a CUDA build of torch for the GPU)")
    if requested == "cuda" and not found and not torch.cuda_available:
        return Check("device", Outcome.FAIL, "DEVICE=cuda but no NVIDIA GPU/driver is visible",
                     "set DEVICE=cpu (or auto), or install the NVIDIA driver / run with --gpus all")
    try:
        device = resolve_device(requested, driver=bool(found), facts=torch)
    except ConfigError as exc:
        return Check("device", Outcome.FAIL, seen + exc.message,
                     "pip install torch==2.13.0 from a CUDA index (see Dockerfile.voice), or set DEVICE=cpu")
    if device == "cuda":
        gpu = torch.gpus[0]
        capability = torch.capability or gpu.capability
        return Check("device", Outcome.OK,
                     f"GPU: {', '.join(g.name for g in torch.gpus)}; torch {torch.torch_version} (CUDA "
                     f"{torch.cuda_version}, cuDNN {torch.cudnn_version}); compute capability "
                     f"{capability[0]}.{capability[1]}, bf16 {'yes' if supports_bf16(capability) else 'no (use fp16)'}")
    if found:
        return Check("device", Outcome.WARN, f"{seen}DEVICE={requested}: the service runs on the CPU on purpose",
                     "set DEVICE=auto to use the GPU")
    return Check("device", Outcome.OK, "CPU only (no NVIDIA GPU visible); everything runs, slower")


def check_settings() -> tuple[Check, Settings | None]:
    """The settings themselves (a wrong variable stops the service), and the object when valid."""
    try:
        from rvc.errors import ConfigError
        from rvc.settings import load_settings
    except ImportError as exc:
        return Check("settings", Outcome.FAIL, f"cannot import the service ({exc.name} missing)", SETUP_FIX), None
    try:
        settings = load_settings()
    except ConfigError as exc:
        return Check("settings", Outcome.FAIL, exc.message, "fix the environment variable named above"), None
    return Check("settings", Outcome.OK, f"voice {settings.rvc_model}, {settings.rvc_workers} workers"), settings


def check_tritonserver() -> Check:
    try:
        from rvc.errors import ConfigError
        from rvc.grpc.launcher import locate_tritonserver
    except ImportError as exc:
        return Check("tritonserver", Outcome.FAIL, f"cannot import the launcher ({exc.name} missing)", SETUP_FIX)
    try:
        installation = locate_tritonserver()
    except ConfigError as exc:
        return Check("tritonserver", Outcome.FAIL, exc.message, SETUP_FIX + " (installs nvidia-pytriton)")
    kind = "bundled with nvidia-pytriton" if installation.bundled else "NVIDIA's binary on PATH"
    if not installation.binary.is_file():
        return Check("tritonserver", Outcome.FAIL, f"{installation.binary} does not exist", SETUP_FIX)
    return Check("tritonserver", Outcome.OK, f"{installation.binary} ({kind})")


def check_assets(settings: Settings) -> Check:
    from rvc.assets import DEMO_NOTICE, inspect_assets

    report = inspect_assets(settings)
    if not report.complete:
        return Check("assets", Outcome.FAIL, f"missing: {', '.join(report.missing)}",
                     "python tools/download_all_assets.py (no network: python tools/make_demo_assets.py)")
    if report.demo:
        return Check("assets", Outcome.WARN, DEMO_NOTICE.split(":", 1)[0] + f" in {', '.join(report.demo_folders)}",
                     "python tools/download_all_assets.py")
    return Check("assets", Outcome.OK, "Spark-TTS-0.5B, voice, hubert_base.pt, rmvpe.pt present")


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def check_ports(settings: Settings) -> Check:
    wanted = {
        "API_PORT": (settings.api_host, settings.api_port),
        "TRITON_GRPC_PORT": (settings.triton_host, settings.triton_grpc_port),
        "TRITON_HTTP_PORT": (settings.triton_host, settings.triton_http_port),
        "TRITON_METRICS_PORT": (settings.triton_host, settings.triton_metrics_port),
    }
    busy = [f"{name}={port} on {host}" for name, (host, port) in wanted.items() if not _port_free(host, port)]
    if busy:
        return Check("ports", Outcome.WARN, f"in use: {', '.join(busy)} (the service itself, if it is running)",
                     "stop what listens there, or set the variable(s) to free ports")
    return Check("ports", Outcome.OK, ", ".join(f"{port}" for _, port in wanted.values()) + " free")


def check_espeak() -> Check:
    if shutil.which("espeak-ng"):
        return Check("espeak-ng", Outcome.OK, "present (reference speech for the tests)")
    return Check("espeak-ng", Outcome.WARN, "missing; only the tests need it", "bash scripts/setup_env.sh --test")


def run_checks() -> list[Check]:
    """Every check, in the order an operator would fix them."""
    checks = [check_python(), check_packages(), check_numpy()]
    settings_check, settings = check_settings()
    checks.append(settings_check)
    checks.append(check_device(settings.device if settings is not None else "auto"))
    checks.append(check_tritonserver())
    if settings is not None:
        checks += [check_assets(settings), check_ports(settings)]
    checks.append(check_espeak())
    return checks


def fix_commands(checks: Sequence[Check], python: str) -> list[list[str]]:
    """The commands ``--fix`` runs for the failed checks it can repair, in order."""
    failed = {check.name for check in checks if check.status is Outcome.FAIL}
    commands = []
    if failed & {"packages", "numpy<2", "tritonserver", "settings"} and "python" not in failed:
        commands.append(["bash", str(PROJECT_ROOT / "scripts" / "setup_env.sh")])
    if "assets" in failed:
        tools = PROJECT_ROOT / "tools"
        commands.append([python, str(tools / "download_all_assets.py"), "--if-reachable"])
        commands.append([python, str(tools / "make_demo_assets.py")])
    return commands


def format_table(checks: Sequence[Check]) -> str:
    """Aligned ``check | status | detail`` rows, with the fix under every row that is not ok."""
    width = max(len(check.name) for check in checks)
    lines = []
    for check in checks:
        lines.append(f"{check.name:<{width}}  {check.status.value:<4}  {check.detail}")
        if check.status is not Outcome.OK and check.fix:
            lines.append(f"{'':<{width}}        fix: {check.fix}")
    return "\n".join(lines)
