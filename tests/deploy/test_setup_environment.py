"""tools/setup_environment.py: each check finds the real problem and names the fix."""

from __future__ import annotations

import importlib.metadata
import socket
import sys
from pathlib import Path

import pytest

from rvc.assets import mark_demo
from rvc.device import GpuFacts, TorchFacts
from rvc.provision.doctor import (
    Check,
    Outcome,
    check_assets,
    check_device,
    check_packages,
    check_ports,
    check_python,
    check_tritonserver,
    fix_commands,
    format_table,
    pinned_requirements,
)
from rvc.settings import Settings, load_settings
from tests.conftest import REPO_ROOT, free_port
from tests.deploy.conftest import RunTool


def write_pyproject(folder: Path, dependencies: list[str], dev: list[str] = ()) -> Path:
    path = folder / "pyproject.toml"
    quoted = lambda items: ", ".join(f'"{item}"' for item in items)  # noqa: E731
    path.write_text(
        f"[project]\nname = 'x'\ndependencies = [{quoted(dependencies)}]\n"
        f"[project.optional-dependencies]\ndev = [{quoted(dev)}]\n"
    )
    return path


def test_pins_are_read_from_the_real_pyproject() -> None:
    pins = pinned_requirements(REPO_ROOT / "pyproject.toml")
    assert pins["numpy"] == "1.26.4" and pins["tritonclient"] == "2.73.0" and "pytest" in pins


def test_installed_pins_pass_including_a_local_version_label(tmp_path: Path) -> None:
    torch_version = importlib.metadata.version("torch")  # 2.13.0+cpu here
    pyproject = write_pyproject(tmp_path, [f"torch=={torch_version.split('+')[0]}", "tritonclient[grpc]==2.73.0"],
                                [f"httpx=={importlib.metadata.version('httpx')}"])
    check = check_packages(pyproject)
    assert check.status is Outcome.OK and "3 pins" in check.detail


def test_missing_and_mismatched_packages_are_named(tmp_path: Path) -> None:
    pyproject = write_pyproject(tmp_path, ["httpx==0.0.1", "surely-not-installed-pkg==1.0", "numpy>=1"])
    check = check_packages(pyproject)
    assert check.status is Outcome.FAIL
    assert "missing: surely-not-installed-pkg" in check.detail
    assert f"httpx {importlib.metadata.version('httpx')} (pinned 0.0.1)" in check.detail
    assert check.fix == "bash scripts/setup_env.sh"


def test_python_other_than_311_fails() -> None:
    assert check_python((3, 11, 7)).status is Outcome.OK
    failed = check_python((3, 12, 1))
    assert failed.status is Outcome.FAIL and "3.11" in failed.fix


CPU_TORCH = TorchFacts("2.13.0+cpu", None, None, False)
CUDA_T4 = TorchFacts("2.13.0", "13.0", 92000, True, (GpuFacts("Tesla T4", (7, 5), 15095),))
H100_SMI = ["NVIDIA H100, 81559 MiB"]


def test_device_check_without_a_gpu() -> None:
    assert check_device("auto", gpus=list).status is Outcome.OK  # this machine's real torch (+cpu)
    assert check_device("cuda", gpus=list).status is Outcome.FAIL
    assert "H100" in check_device("cuda", gpus=lambda: H100_SMI).detail


def test_a_gpu_with_the_cpu_torch_build_is_not_fine() -> None:
    check = check_device("auto", gpus=lambda: H100_SMI, facts=lambda: CPU_TORCH)
    assert check.status is Outcome.FAIL
    assert "H100" in check.detail and "CPU-only build" in check.detail and "torch.version.cuda is None" in check.detail
    assert "CUDA index" in check.fix


def test_a_gpu_with_a_cuda_build_reports_capability_and_bf16() -> None:
    check = check_device("auto", gpus=lambda: ["Tesla T4, 15360 MiB"], facts=lambda: CUDA_T4)
    assert check.status is Outcome.OK
    assert "CUDA 13.0" in check.detail and "7.5" in check.detail and "bf16 no" in check.detail


def test_a_gpu_left_idle_on_purpose_is_a_warning() -> None:
    check = check_device("cpu", gpus=lambda: H100_SMI, facts=lambda: CUDA_T4)
    assert check.status is Outcome.WARN and "DEVICE=auto" in check.fix


def test_a_gpu_without_torch_installed_fails() -> None:
    check = check_device("auto", gpus=lambda: H100_SMI, facts=lambda: None)
    assert check.status is Outcome.FAIL and "torch is not installed" in check.detail
    assert check_device("auto", gpus=list, facts=lambda: None).status is Outcome.OK


def test_bundled_tritonserver_is_found() -> None:
    check = check_tritonserver()
    assert check.status is Outcome.OK and "tritonserver" in check.detail


def test_assets_missing_then_demo_then_real(settings: Settings) -> None:
    missing = check_assets(settings)
    assert missing.status is Outcome.FAIL and "download_all_assets.py" in missing.fix
    for path in (settings.spark_model_dir / "config.yaml", settings.weights_dir / settings.rvc_model,
                 settings.hubert_path, settings.rmvpe_path):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    assert check_assets(settings).status is Outcome.OK
    mark_demo(settings.hubert_path.parent)
    demo = check_assets(settings)
    assert demo.status is Outcome.WARN and "random weights" in demo.detail


def test_busy_port_is_named_by_its_variable(settings: Settings) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        local = load_settings(api_port=port, weights_dir=settings.weights_dir)
        check = check_ports(local)
    assert check.status is Outcome.WARN and f"API_PORT={port}" in check.detail


def test_fix_plans_setup_then_assets() -> None:
    checks = [Check("packages", Outcome.FAIL, ""), Check("assets", Outcome.FAIL, ""), Check("ports", Outcome.WARN, "")]
    commands = fix_commands(checks, sys.executable)
    assert [Path(c[1]).name for c in commands] == ["setup_env.sh", "download_all_assets.py", "make_demo_assets.py"]
    assert commands[1][2:] == ["--if-reachable"]
    for command in commands:
        assert Path(command[1]).is_file()
    # a wrong Python cannot be fixed by setup_env.sh, which would refuse it anyway
    assert fix_commands([Check("python", Outcome.FAIL, ""), Check("packages", Outcome.FAIL, "")], "py") == []


def test_table_shows_fixes_only_for_problems() -> None:
    table = format_table([Check("python", Outcome.OK, "3.11", "never shown"), Check("assets", Outcome.FAIL, "x", "do y")])
    assert "never shown" not in table and "fix: do y" in table


def test_cli_reports_missing_assets_and_exits_1(run_tool: RunTool) -> None:
    result = run_tool("setup_environment", timeout=120, API_PORT=str(free_port()))
    lines = result.stdout.splitlines()
    assert result.returncode == 1
    assert any(line.startswith("python ") and " ok " in line for line in lines)
    assert any(line.startswith("assets ") and "FAIL" in line for line in lines)
    assert "fix: python tools/download_all_assets.py" in result.stdout


@pytest.mark.usefixtures("demo_assets")
def test_cli_fix_fills_in_missing_assets_then_passes(run_tool: RunTool, settings: Settings) -> None:
    settings.rmvpe_path.unlink()
    # nothing listens on HF_ENDPOINT: the download step exits 3 at once and the demo generator fills in
    result = run_tool("setup_environment", "--fix", timeout=300, HF_ENDPOINT="http://127.0.0.1:9",
                      OMP_NUM_THREADS="1", API_PORT=str(free_port()))
    assert "download_all_assets.py --if-reachable" in result.stdout
    assert "make_demo_assets.py" in result.stdout and "checking again:" in result.stdout
    assert result.returncode == 0, result.stdout + result.stderr
    assert settings.rmvpe_path.is_file()
    recheck = result.stdout.split("checking again:")[1]
    assert any(line.startswith("assets ") and " warn " in line for line in recheck.splitlines())
