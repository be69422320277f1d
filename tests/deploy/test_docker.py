"""Dockerfile.voice and docker-compose.voice.yml, checked without a docker engine.

The compose file is validated against the Compose Specification's JSON schema,
vendored as ``compose-spec.json`` from github.com/compose-spec/compose-spec
(``schema/compose-spec.json`` at commit 170098ba07d9f53c383a41bfd4c5166b0a4529a6,
Apache-2.0). The Dockerfile is parsed here and linted for the rules that matter
to this service; its healthcheck command is run against a stub /health.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from rvc.settings import Settings, load_settings
from tests.conftest import REPO_ROOT
from tests.deploy.schema_check import validate

DOCKERFILE = REPO_ROOT / "Dockerfile.voice"
COMPOSE = REPO_ROOT / "docker-compose.voice.yml"
SCHEMA = Path(__file__).with_name("compose-spec.json")


# --- a minimal Dockerfile parser ------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str
    line: int

    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form CMD/ENTRYPOINT/HEALTHCHECK CMD, else None."""
        text = self.arguments
        if self.keyword == "HEALTHCHECK":
            text = text[text.index("CMD") + 3 :].strip()
        return json.loads(text) if text.startswith("[") else None


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined and comments dropped (the default ``\\`` escape)."""
    instructions: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue  # comment lines are skipped even inside a continuation
        if not pending:
            start = number
        continued = stripped.endswith("\\")
        pending.append(stripped[:-1].strip() if continued else stripped)
        if not continued:
            keyword, _, arguments = " ".join(pending).partition(" ")
            instructions.append(Instruction(keyword.upper(), arguments.strip(), start))
            pending = []
    assert not pending, "the Dockerfile ends inside a continuation line"
    return instructions


def env_pairs(instruction: Instruction) -> dict[str, str]:
    return dict(token.split("=", 1) for token in shlex.split(instruction.arguments))


def dockerignore_patterns() -> list[str]:
    lines = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def ignored(relative: str, patterns: list[str]) -> bool:
    parts = Path(relative).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        bare = pattern.removeprefix("**/")
        for prefix in prefixes:
            candidates = [prefix] + ([prefix.rsplit("/", 1)[-1]] if pattern.startswith("**/") else [])
            if any(fnmatch.fnmatchcase(candidate, bare) for candidate in candidates):
                return True
    return False


@pytest.fixture(scope="module")
def instructions() -> list[Instruction]:
    return parse_dockerfile(DOCKERFILE.read_text())


def test_only_args_come_before_the_first_from(instructions: list[Instruction]) -> None:
    first_from = next(i for i, instruction in enumerate(instructions) if instruction.keyword == "FROM")
    assert all(instruction.keyword == "ARG" for instruction in instructions[:first_from])
    assert instructions[first_from].arguments == "${BASE_IMAGE}"


def test_base_image_is_nvidia_tritonserver_with_a_trtllm_switch(instructions: list[Instruction]) -> None:
    args = {i.arguments.split("=", 1)[0]: i.arguments.split("=", 1)[1] for i in instructions
            if i.keyword == "ARG" and "=" in i.arguments}
    assert args["BASE_IMAGE"] == "nvcr.io/nvidia/tritonserver:${TRITON_VERSION}-py3"
    assert re.fullmatch(r"\d\d\.\d\d", args["TRITON_VERSION"])
    assert "trtllm-python-py3" in DOCKERFILE.read_text()  # the documented TensorRT-LLM variant


def test_torch_build_is_chosen_by_a_build_argument(instructions: list[Instruction]) -> None:
    runs = [i.arguments for i in instructions if i.keyword == "RUN"]
    torch_install = [run for run in runs if '"torch==2.13.0"' in run]
    assert len(torch_install) == 1 and '--index-url "${TORCH_INDEX_URL}"' in torch_install[0]
    project_install = [run for run in runs if "pip install -e ." in run]
    assert project_install and runs.index(torch_install[0]) < runs.index(project_install[0])


def test_runs_as_a_non_root_user_before_the_entrypoint(instructions: list[Instruction]) -> None:
    users = [i for i in instructions if i.keyword == "USER"]
    entry = [i for i in instructions if i.keyword in ("ENTRYPOINT", "CMD")]
    assert users and entry
    assert users[-1].arguments not in ("root", "0", "0:0")
    assert users[-1].line < min(i.line for i in entry)
    assert not [i for i in instructions if i.keyword == "RUN" and i.line > users[-1].line]


def test_entrypoint_is_nvidias_then_the_start_script(instructions: list[Instruction]) -> None:
    (entrypoint,) = [i for i in instructions if i.keyword == "ENTRYPOINT"]
    command = entrypoint.exec_form()
    # NVIDIA's entrypoint first (CUDA forward compatibility), then it execs the start script
    assert command == ["/opt/nvidia/nvidia_entrypoint.sh", "bash", "/workspace/scripts/start_services.sh"]
    assert (REPO_ROOT / "scripts" / "start_services.sh").is_file()


def test_torch_default_is_the_checked_cuda_build(instructions: list[Instruction]) -> None:
    args = {i.arguments.split("=", 1)[0]: i.arguments.split("=", 1)[1] for i in instructions
            if i.keyword == "ARG" and "=" in i.arguments}
    assert args["TORCH_INDEX_URL"] == "https://pypi.org/simple"
    text = DOCKERFILE.read_text()
    assert "CUDA 13.0 build" in text and "NOT checked" in text  # what was checked, and what was not
    assert "/whl/cpu" not in args["TORCH_INDEX_URL"]


def test_docker_run_example_mounts_every_asset_folder() -> None:
    header = DOCKERFILE.read_text().split("ARG ", 1)[0]
    example = header[header.index("docker run"):header.index("docker compose")]
    for target in ("/workspace/weights", "/workspace/assets", "/workspace/pretrained_models", "/workspace/var"):
        assert f":{target}" in example, target
    assert "--gpus all" in example and "--init" in example


def test_every_copy_source_exists_and_is_in_the_build_context(instructions: list[Instruction]) -> None:
    patterns = dockerignore_patterns()
    copies = [i for i in instructions if i.keyword in ("COPY", "ADD")]
    assert copies
    for copy in copies:
        tokens = [token for token in shlex.split(copy.arguments) if not token.startswith("--")]
        assert not copy.arguments.startswith("--from"), "single-stage build expected"
        for source in tokens[:-1]:
            assert list(REPO_ROOT.glob(source.rstrip("/"))), f"line {copy.line}: {source} is not in the repo"
            assert not ignored(source.rstrip("/"), patterns), f"line {copy.line}: {source} is in .dockerignore"


def test_dockerignore_keeps_models_and_environments_out() -> None:
    patterns = dockerignore_patterns()
    for path in (".venv", ".git", "weights", "assets", "pretrained_models", "var", "rvc/__pycache__"):
        assert ignored(path, patterns), path
    for path in ("rvc", "sparktts", "triton/model_repo", "scripts/start_services.sh", "pyproject.toml"):
        assert not ignored(path, patterns), path


def test_image_environment_is_valid_settings(instructions: list[Instruction]) -> None:
    env: dict[str, str] = {}
    for instruction in instructions:
        if instruction.keyword == "ENV":
            env.update(env_pairs(instruction))
    fields = {name.upper() for name in Settings.model_fields}
    settings = load_settings(**{key.lower(): value for key, value in env.items() if key in fields})
    assert settings.api_host == "0.0.0.0" and settings.api_port == 8080
    assert str(settings.weights_dir) == "/workspace/weights"
    assert {"RVC_MODEL", "RVC_WORKERS", "API_PORT", "TRITON_MODEL_REPO"} <= set(env)
    assert settings.rvc_workers == 2 and settings.for_device("cuda").rvc_workers == 1  # RVC_WORKERS=auto
    assert settings.triton_startup_timeout_s == float(env["TRITON_STARTUP_TIMEOUT_S"])
    assert str(settings.trt_engine_dir).startswith("/workspace/var/")  # engines on the var volume
    assert settings.rvc_precision == "auto" and settings.device == "auto"  # main's GPU rule picks the dtype


# --- the healthcheck commands, run for real ----------------------------------------------------------


def run_probe(command: list[str], env: dict[str, str]) -> int:
    assert command[0] == "python"
    return subprocess.run([sys.executable, *command[1:]], env=env, capture_output=True, timeout=30,
                          check=False).returncode


def test_dockerfile_healthcheck_follows_health(instructions: list[Instruction],
                                              health_server: tuple[int, dict[str, Any]]) -> None:
    port, state = health_server
    (healthcheck,) = [i for i in instructions if i.keyword == "HEALTHCHECK"]
    command = healthcheck.exec_form()
    assert command is not None and "/health" in command[-1]
    assert run_probe(command, {"API_PORT": str(port)}) == 0
    state["status"] = 503
    assert run_probe(command, {"API_PORT": str(port)}) != 0


def test_compose_healthcheck_follows_health(compose: dict[str, Any],
                                            health_server: tuple[int, dict[str, Any]]) -> None:
    port, state = health_server
    test = compose["services"]["voice"]["healthcheck"]["test"]
    assert test[0] == "CMD"
    command = [part.replace("127.0.0.1:8080", f"127.0.0.1:{port}") for part in test[1:]]
    assert run_probe(command, {}) == 0
    state["status"] = 503
    assert run_probe(command, {}) != 0


# --- docker-compose.voice.yml ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return json.loads(SCHEMA.read_text())


def test_compose_file_satisfies_the_compose_specification(compose: dict[str, Any], schema: dict[str, Any]) -> None:
    assert validate(compose, schema) == []


@pytest.mark.parametrize(
    "mutation",
    [
        lambda c: c["services"]["voice"].update(restart_policy="always"),  # not a service key
        lambda c: c["services"]["voice"]["deploy"]["resources"]["reservations"].update(gpus=1),
        lambda c: c["services"]["voice"].update(ports={"8080": 8080}),
        lambda c: c["services"]["voice"]["healthcheck"].update(interval=30),  # must be a duration string
    ],
    ids=["unknown-key", "unknown-reservation", "ports-as-mapping", "interval-not-a-string"],
)
def test_schema_check_rejects_broken_compose_files(compose: dict[str, Any], schema: dict[str, Any],
                                                   mutation: Any) -> None:
    broken = json.loads(json.dumps(compose))
    mutation(broken)
    assert validate(broken, schema) != []


def test_compose_service_shape(compose: dict[str, Any]) -> None:
    voice = compose["services"]["voice"]
    assert voice["build"]["dockerfile"] == DOCKERFILE.name and (REPO_ROOT / voice["build"]["context"]).is_dir()
    assert voice["ports"] == ["8080:8080"]
    assert "8001" in [str(port) for port in voice["expose"]]
    assert not any("8001" in str(port) for port in voice["ports"])
    (device,) = voice["deploy"]["resources"]["reservations"]["devices"]
    assert device["capabilities"] == ["gpu"] and device["driver"] == "nvidia"
    targets = {volume.split(":")[1] for volume in voice["volumes"]}
    assert {"/workspace/weights", "/workspace/assets", "/workspace/pretrained_models", "/workspace/var"} <= targets
    named = [volume.split(":")[0] for volume in voice["volumes"] if not volume.startswith(".")]
    assert named and set(named) <= set(compose.get("volumes", {}))  # named volumes are declared
    assert voice["restart"] == "unless-stopped" and voice["init"] is True
    assert voice["shm_size"] and voice["healthcheck"]["start_period"]


def test_compose_environment_is_valid_settings(compose: dict[str, Any]) -> None:
    environment = compose["services"]["voice"]["environment"]
    assert {"RVC_MODEL", "RVC_WORKERS", "API_PORT", "TRITON_MODEL_REPO", "API_HOST"} <= set(environment)
    resolved = {key: re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(value)) for key, value in environment.items()}
    fields = {name.upper() for name in Settings.model_fields}
    settings = load_settings(**{key.lower(): value for key, value in resolved.items() if key in fields})
    assert settings.api_host == "0.0.0.0" and settings.rvc_model == "SilverWolf_e300_s6600.pth"
    assert settings.rvc_workers == 2 and settings.for_device("cuda").rvc_workers == 1  # RVC_WORKERS=auto
    assert {"RVC_PRECISION", "DEVICE", "TRITON_STARTUP_TIMEOUT_S", "LLM_BACKEND", "TRT_ENGINE_DIR"} <= set(environment)
    assert str(settings.trt_engine_dir).startswith("/workspace/var/")
