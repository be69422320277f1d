"""Where a tritonserver (re)start's time goes on demo assets: each model's load and each stub's CPU seconds.

Recovery after a tritonserver death (issue 19) is, apart from a fraction of a second of the
supervisor's and the gateway's, one fresh tritonserver loading its four python-backend models in
parallel: one stub process per model, each importing torch (and transformers where its model needs
it) before loading weights. On a small shared CPU box the wall time is that CPU work divided by the
cores the box has free, so this prints both: seconds from start to ready and per model (from
tritonserver's own log timestamps), and the CPU seconds each stub spent until ready, which do not
depend on what else the box runs. The load average is printed with each run.

    python bench/bench_triton_restart.py            # 3 starts on demo assets written under a temp dir
    python bench/bench_triton_restart.py --runs 1 --root /tmp/restart
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rvc.grpc.launcher import TritonServer  # noqa: E402
from rvc.grpc.model_repository import prepare_model_repository  # noqa: E402
from rvc.launch import triton_config  # noqa: E402
from rvc.settings import auto_llm_backend  # noqa: E402
from tests.stack import stack_settings, write_demo_assets  # noqa: E402

_TICKS = os.sysconf("SC_CLK_TCK")
# I1203 07:15:50.792923 32103 model_lifecycle.cc:472] "loading: spark_tts:1" / "successfully loaded 'vocoder'"
_LOG_EVENT = re.compile(r"^I\d{4} (\d\d):(\d\d):(\d\d\.\d+) .*\"(?:loading: (\w+):\d+|successfully loaded '(\w+)')\"")


def stub_cpu_seconds(server: TritonServer) -> dict[str, float]:
    """model name -> user + system CPU seconds of its stub so far (one stub per model instance, summed)."""
    found: dict[str, float] = {}
    for pid in server.group_members():
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if Path(command[0].decode()).name != "triton_python_backend_stub":
            continue
        model = Path(command[1].decode()).parent.parent.name  # <repo>/<model>/1/model.py
        if not model:  # a stub read while it exits: its command line is gone
            continue
        found[model] = found.get(model, 0.0) + (int(fields[11]) + int(fields[12])) / _TICKS  # utime + stime
    return found


def load_seconds(log: str) -> dict[str, float]:
    """model name -> seconds from its ``loading`` line to its ``successfully loaded`` line."""
    started: dict[str, float] = {}
    loaded: dict[str, float] = {}
    for line in log.splitlines():
        if (match := _LOG_EVENT.match(line)) is None:
            continue
        at = int(match[1]) * 3600 + int(match[2]) * 60 + float(match[3])
        if match[4]:
            started[match[4]] = at
        elif match[5] in started:
            loaded[match[5]] = round(at - started[match[5]], 2)
    return loaded


def one_start(server: TritonServer) -> dict[str, object]:
    """Start ``server`` (sampling its stubs' CPU until ready), measure, stop it."""
    cpu: dict[str, float] = {}
    ready = threading.Event()

    def sample() -> None:  # a stub's counters vanish with it: keep the last reading of each
        while not ready.wait(0.1):
            if server.pid is not None:
                cpu.update(stub_cpu_seconds(server))

    sampler = threading.Thread(target=sample, daemon=True)
    load_before = os.getloadavg()[0]
    start = time.monotonic()
    sampler.start()
    try:
        server.start()
        start_to_ready = time.monotonic() - start
        cpu.update(stub_cpu_seconds(server))
        ready.set()
        sampler.join()
        return {
            "start_to_ready_s": round(start_to_ready, 2),
            "model_load_s": load_seconds(server.log_text(None)),
            "stub_cpu_s": {model: round(seconds, 2) for model, seconds in sorted(cpu.items())},
            "stub_cpu_total_s": round(sum(cpu.values()), 2),
            "load_average_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        }
    finally:
        ready.set()
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--root", type=Path, default=None, help="where the demo assets and repository go")
    parser.add_argument(
        "--llm-backend", choices=["auto", "python", "onnxruntime"], default="auto",
        help="the spark_tts LLM backend; auto resolves as the service does (onnxruntime on CPU when installed)",
    )
    args = parser.parse_args()
    root = args.root or Path(tempfile.mkdtemp(prefix="bench_triton_restart_"))
    settings = stack_settings(root, write_demo_assets(root / "assets"), triton_host="127.0.0.1")
    backend = auto_llm_backend("cpu") if args.llm_backend == "auto" else args.llm_backend
    repository = prepare_model_repository(
        settings.triton_model_repo, model_dir=settings.spark_model_dir, llm_backend=backend
    )
    config = dataclasses.replace(triton_config(settings, repository), stop_timeout_s=10)
    print(f"{os.cpu_count()} CPUs; LLM backend {backend}; demo assets under {root}", flush=True)
    for run in range(args.runs):
        print(json.dumps({"run": run + 1, **one_start(TritonServer(config))}), flush=True)


if __name__ == "__main__":
    main()
