"""Daemon mode: tools/rvc_server_control.py start/status/stop as subprocesses, RVCClient in between."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from rvc.errors import InvalidInput, ModelUnavailable, NotFound
from rvc.infer.converter import VoiceConverter
from rvc.infer.params import ConversionParams
from rvc.server.client import RVCClient
from rvc.server.shm import list_segments

from .conftest import OTHER_VOICE, SAMPLE_RATE, VOICE, Assets, speech_like

TOOL = Path(__file__).resolve().parents[2] / "tools" / "rvc_server_control.py"
PARAMS = ConversionParams(pitch_shift=3, seed=9, deterministic=True)


class Tool:
    """Runs the control tool with settings pointing at the test's assets and run dir (neutral cwd)."""

    def __init__(self, assets: Assets, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.env = {
            **os.environ,
            "WEIGHTS_DIR": str(assets.weights_dir),
            "ASSETS_DIR": str(assets.hubert.parent.parent),
            "RUN_DIR": str(run_dir),
            "RVC_MODEL": "NotThisOne.pth",
            "RVC_WORKERS": "3",
        }

    def __call__(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(TOOL), *args],
            env=self.env,
            cwd=self.run_dir.parent,
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture
def tool(assets: Assets, tmp_path: Path) -> Iterator[Tool]:
    tool = Tool(assets, tmp_path / "run")
    yield tool
    pid_file = tool.run_dir / "rvc_server.pid"
    if pid_file.exists():  # a failed test must not leave a daemon behind
        tool("stop", "--timeout", "5")


def test_control_tool_starts_reports_and_stops_a_daemon(tool: Tool, reference: VoiceConverter) -> None:
    assert tool("status").returncode == 3
    started = tool("start", "--model", f"{VOICE}.pth", "--workers", "1", "--queue-size", "4")
    assert started.returncode == 0, started.stderr
    assert "RVC server started" in started.stdout
    pid = int((tool.run_dir / "rvc_server.pid").read_text())
    assert _alive(pid)
    again = tool("start", "--model", f"{VOICE}.pth", "--workers", "1")
    assert again.returncode == 0 and "already running" in again.stdout

    table = tool("status")
    assert table.returncode == 0
    assert (
        f"pid {pid}" in table.stdout and "1/1 ready" in table.stdout and f"{VOICE} (default)" in table.stdout
    )
    report = json.loads(tool("status", "--json").stdout)
    assert (
        report["pid"] == pid and report["status"]["num_workers"] == 1 and report["status"]["max_queue"] == 4
    )
    worker_pid = report["status"]["workers"][0]["pid"]

    client = RVCClient(tool.run_dir / "rvc_server.sock")
    x = speech_like(200, 0.5)
    result = client.convert(x, SAMPLE_RATE, PARAMS)
    np.testing.assert_array_equal(result.audio, reference.convert(VOICE, x, SAMPLE_RATE, PARAMS).audio)
    assert result.sample_rate == 40000 and {"ipc", "queue_wait", "total"} <= set(result.timings)
    assert client.load_voice(OTHER_VOICE)["name"] == OTHER_VOICE
    np.testing.assert_array_equal(
        client.convert(x, SAMPLE_RATE, PARAMS, voice=OTHER_VOICE).audio,
        reference.convert(OTHER_VOICE, x, SAMPLE_RATE, PARAMS).audio,
    )
    client.unload_voice(OTHER_VOICE)
    assert client.status().voices == (VOICE,)
    with pytest.raises(NotFound):
        client.convert(x, SAMPLE_RATE, voice=OTHER_VOICE)
    with pytest.raises(InvalidInput):
        client.load_voice("../weights/x")
    with pytest.raises(InvalidInput, match="pitch_shift") as out_of_range:  # checked once, at the pool's entry
        client.convert(x, SAMPLE_RATE, ConversionParams(pitch_shift=99))
    assert out_of_range.value.field == "pitch_shift"
    with pytest.raises(InvalidInput, match="unknown conversion parameters"):
        client._call({"op": "convert", "sample_rate": SAMPLE_RATE, "params": {"nope": 1}}, x.tobytes())
    with pytest.raises(InvalidInput, match="unknown op"):
        client._call({"op": "explode"})

    stopped = tool("stop")
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert not _alive(pid) and not _alive(worker_pid)
    assert not (tool.run_dir / "rvc_server.sock").exists() and not (tool.run_dir / "rvc_server.pid").exists()
    assert list_segments(f"rvc{pid:x}") == []
    assert tool("status").returncode == 3
    gone = tool("stop")
    assert gone.returncode == 0 and "not running" in gone.stdout
    with pytest.raises(ModelUnavailable, match="not reachable"):
        client.ping()


@pytest.mark.parametrize("foreground", [False, True])
def test_start_with_an_unknown_voice_fails_with_a_readable_error(tool: Tool, foreground: bool) -> None:
    args = ["start", "--model", "Nobody.pth", "--workers", "1"] + (["--foreground"] if foreground else [])
    failed = tool(*args, timeout=120)
    assert failed.returncode == 1
    assert "no voice 'Nobody'" in failed.stderr  # the log tail (background) or the log itself (foreground)
    assert not (tool.run_dir / "rvc_server.sock").exists()


def test_bad_arguments_exit_with_usage_code(tool: Tool) -> None:
    assert tool("start", "--workers", "0").returncode == 2
    assert tool("frobnicate").returncode == 2


def test_daemon_settings_resolve_auto_before_any_worker_sees_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    from rvc.errors import ConfigError
    from rvc.server.daemon import build_parser, pool_config_from_args, to_argv

    parser = argparse.ArgumentParser(parents=[build_parser()])
    monkeypatch.setenv("DEVICE", "auto")
    monkeypatch.delenv("RVC_WORKERS", raising=False)
    args = parser.parse_args(["--max-gpu-mb", "512"])
    config, _ = pool_config_from_args(args)
    assert (config.device, config.num_workers, config.max_gpu_mb) == ("cpu", 2, 512.0)  # no driver here
    args.device = config.device  # what the control tool hands the detached daemon
    assert to_argv(args)[to_argv(args).index("--device") + 1] == "cpu"
    with pytest.raises(ConfigError, match="DEVICE=cuda but torch"):  # torch here is a CPU build
        pool_config_from_args(parser.parse_args(["--device", "cuda"]))
