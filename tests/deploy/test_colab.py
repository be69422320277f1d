"""colab/triton_spark_rvc_unified.ipynb: valid nbformat v4, and everything it runs exists in the repo.

``nbformat`` is not a dependency, so the v4 structure is checked here directly
(the required keys and types of the nbformat 4.5 schema, cell ids included).
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import pytest

from rvc.settings import Settings
from tests.conftest import REPO_ROOT

NOTEBOOK = REPO_ROOT / "colab" / "triton_spark_rvc_unified.ipynb"
REPO_TOP = ("scripts", "tools", "rvc", "sparktts", "triton", "tests", "colab")


@pytest.fixture(scope="module")
def notebook() -> dict[str, Any]:
    return json.loads(NOTEBOOK.read_text())


def source(cell: dict[str, Any]) -> str:
    return cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])


def code_sources(notebook: dict[str, Any]) -> list[str]:
    return [source(cell) for cell in notebook["cells"] if cell["cell_type"] == "code"]


def test_notebook_is_nbformat_v4(notebook: dict[str, Any]) -> None:
    assert notebook["nbformat"] == 4 and isinstance(notebook["nbformat_minor"], int)
    assert notebook["metadata"]["kernelspec"]["name"] == "python3"
    ids = []
    for cell in notebook["cells"]:
        assert cell["cell_type"] in ("markdown", "code", "raw")
        assert isinstance(cell["metadata"], dict)
        assert isinstance(cell["source"], str) or all(isinstance(line, str) for line in cell["source"])
        if notebook["nbformat_minor"] >= 5:
            assert re.fullmatch(r"[a-zA-Z0-9-_]{1,64}", cell["id"])
            ids.append(cell["id"])
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None  # committed without outputs
        else:
            assert "outputs" not in cell and "execution_count" not in cell
    assert len(ids) == len(set(ids))


def test_code_cells_are_valid_python_once_shell_lines_are_set_aside(notebook: dict[str, Any]) -> None:
    for code in code_sources(notebook):
        # IPython turns `!command` lines into calls; stand in a `pass` with the same indentation
        python = re.sub(r"^(\s*)!.*$", r"\1pass", code, flags=re.MULTILINE)
        ast.parse(python)


def test_it_installs_udocker_runs_the_image_and_plays_the_result(notebook: dict[str, Any]) -> None:
    code = "\n".join(code_sources(notebook))
    for step in ("pip install -q udocker", "udocker --allow-root install", "udocker --allow-root pull",
                 "udocker --allow-root create", '"udocker", "--allow-root", "run"', "/synthesize",
                 "IPython.display import Audio", "display(Audio("):
        assert step in code, step


def test_every_repo_path_it_runs_exists(notebook: dict[str, Any]) -> None:
    code = "\n".join(code_sources(notebook))
    tops = "|".join(REPO_TOP)
    pattern = rf"(?:/workspace/)?\b((?:{tops})/[\w./-]*\w)"
    paths = set(re.findall(pattern, code))
    assert "scripts/start_services.sh" in paths
    for path in paths:
        assert (REPO_ROOT / path).exists(), path
    for module in re.findall(r"python3? -m ([\w.]+)", code):
        assert (REPO_ROOT / Path(*module.split("."))).with_suffix(".py").is_file(), module


def test_container_environment_names_real_settings(notebook: dict[str, Any]) -> None:
    code = "\n".join(code_sources(notebook))
    start = code.index("env = {")
    names = re.findall(r'"([A-Z_]+)":', code[start : code.index("}", start)])
    fields = {name.upper() for name in Settings.model_fields} | {"HF_TOKEN", "HF_ENDPOINT"}
    assert names and set(names) <= fields
    assert {"RVC_MODEL", "RVC_WORKERS", "API_PORT", "TRITON_MODEL_REPO"} <= set(names)


def test_settings_suit_a_t4_under_udocker(notebook: dict[str, Any]) -> None:
    """Colab's T4 (compute capability 7.5) has no bf16; one worker per GPU; udocker's ptrace mode is slow."""
    from rvc.device import check_rvc_precision
    from rvc.settings import load_settings

    namespace: dict[str, Any] = {}
    exec(source(notebook["cells"][2]), namespace)  # the settings cell: plain assignments
    check_rvc_precision(namespace["RVC_PRECISION"], "cuda", (7, 5))  # raises for bf16
    settings = load_settings(rvc_workers=str(namespace["RVC_WORKERS"]), rvc_precision=namespace["RVC_PRECISION"],
                             triton_startup_timeout_s=namespace["TRITON_STARTUP_TIMEOUT_S"])
    assert settings.for_device("cuda").rvc_workers == 1
    assert settings.triton_startup_timeout_s > 600


def test_container_runs_through_nvidias_entrypoint_with_every_folder_mounted(notebook: dict[str, Any]) -> None:
    code = "\n".join(code_sources(notebook))
    assert '"/opt/nvidia/nvidia_entrypoint.sh", "bash", "/workspace/scripts/start_services.sh"' in code
    for target in ("weights", "assets", "pretrained_models", "var"):
        assert f":/workspace/{target}" in code, target
    for name in ("RVC_PRECISION", "TRITON_STARTUP_TIMEOUT_S", "DEVICE"):
        assert f'"{name}":' in code, name


def test_it_prints_the_time_and_disk_the_readme_still_lacks(notebook: dict[str, Any]) -> None:
    """The image's pull time and size and the first start's time and disk use are not measured yet
    (no GPU run): the notebook prints each, so that its first real run gives the README's figures."""
    code = "\n".join(code_sources(notebook))
    assert "container created in {(time.monotonic() - started) / 60:.1f} min" in code
    assert "healthy {(time.monotonic() - service_started) / 60:.1f} min after the start" in code
    assert "!du -sh ~/.udocker" in code and "!du -sh {WORK}" in code
    assert code.count("shutil.disk_usage('/content').free") == 2
