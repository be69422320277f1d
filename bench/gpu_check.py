"""What only an NVIDIA GPU can tell about this service, in one run of at most 8 minutes (bench/gpu_check.sh).

Steps, in order (each prints ``[ok]``, ``[FAIL]``, ``[SKIP]`` with the reason, or ``[PENDING]`` for a
check whose code path is not built yet; none is pending now):

1. torch and driver facts: a CPU build beside a driver is refused; CUDA, cuDNN, capability, bf16, TF32;
   what the installation occupies on disk (venv, tritonserver, model folders; ``gpu_tunings.disk_use``).
2. a cuDNN convolution in a child process under the launcher's environment (``server_environment``):
   the stubs' view, where a system folder first on LD_LIBRARY_PATH would load the image's cuDNN.
3. Triton on CUDA with the demo models (instances spread over every GPU, as the service places
   them): ready time, GPU memory per stub, one offline and one
   streaming synthesis; the LLM's dtype and TF32 per stub as the rule says for this card, the codec
   float32, and a float16 LLM's head scoring in float32 (``gpu_precision.py``); the LLM's per-row
   sampling where the logits are against one host copy per step (its device syncs, ``gpu_tunings.py``).
4. the RVC pool on CUDA: 5, 60 and 300 s inputs with rmvpe and pm, fp16 against fp32 (RMS
   difference), GPU memory after each; RMVPE chunks against the whole input on CUDA (300 s); the
   decoder's CPU tunings (planar convolutions, 4 s windows) against the reference layout on CUDA.
5. the OOM and sticky-error paths: real CUDA errors through ``rvc.device.classify_cuda_error``; a
   real OOM in a pool worker (the card filled from this process) answered DeviceOutOfMemory by a
   worker that serves on; an injected sticky error ending the worker and its replacement converting.
6. one ``/synthesize`` end to end (``python -m rvc.launch``) and ``/status``'s device and dtype per
   part (gateway cpu, Triton models and RVC workers on CUDA, codec float32).
7. tokens/s, RTF and first-chunk latency at concurrency 1 and 4, offline and streaming
   (``bench/bench_triton.py``'s modes, ``gpu_throughput.py``), beside the official runtime's L20
   table (``official_runtime.py``: RTF 0.136 offline, first chunk P50 210 ms at 1 and 1018 ms at 4).
8. LLM_BACKEND=tensorrtllm, only in NVIDIA's TensorRT-LLM image: ``triton/run.sh 1 2`` on the demo LLM
   (the image's python converts, ``trtllm-build`` builds the engine) and one synthesis through it.

Steps 1 and 2 run anywhere (on a CPU host they check the facts and the environment with a CPU
convolution); steps 3-8 need a CUDA device and say so when skipped. Demo models (random weights)
stand in where the real ones are absent: their timings are not the real model's and are printed
as such. Never read a skipped step as a pass.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))  # its siblings (gpu_throughput, official_runtime), also when imported

import rvc  # noqa: E402,F401  (the triton-folder guard, before torch loads)
from rvc.device import describe, driver_present, torch_facts  # noqa: E402

if TYPE_CHECKING:
    from rvc.grpc.launcher import TritonServer, TritonServerConfig

VOICE = "SilverWolf_e300_s6600"


@dataclass
class Context:
    cuda: bool
    smoke: bool  # --smoke-on-cpu: run the GPU steps' code on the CPU, short, to test the script itself
    scratch: Path
    deadline: float
    results: list[tuple[str, str, str]]
    smoked: bool = False  # set by need_cuda when the current step runs on the CPU under --smoke-on-cpu

    def left(self) -> float:
        return self.deadline - time.monotonic()


class Skip(Exception):
    """The step cannot run here; the message says what it needs."""


class Pending(Exception):
    """The code path this step checks is not built yet; the message says which."""


def gpu_memory_by_pid() -> dict[int, int]:
    """MiB of GPU memory per process, from nvidia-smi (what each stub and worker holds)."""
    out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                         capture_output=True, text=True, timeout=30, check=False).stdout
    rows = [line.split(",") for line in out.splitlines() if line.strip()]
    return {int(pid): int(mib) for pid, mib in rows}


def descendants(pid: int) -> set[int]:
    children = {pid}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[1]) == pid:
                children |= descendants(int(entry.name))
    return children


def need_cuda(ctx: Context, *, smoke_ok: bool = True) -> Literal["cpu", "cuda"]:
    """The device a GPU step runs on: CUDA, or the CPU under --smoke-on-cpu (a test of this script only)."""
    if ctx.cuda:
        return "cuda"
    if ctx.smoke and smoke_ok:
        ctx.smoked = True
        return "cpu"
    raise Skip("needs a CUDA device (step 1 found none)")


def gpu_memory(ctx: Context) -> dict[int, int]:
    return gpu_memory_by_pid() if ctx.cuda else {}


def demo_assets(ctx: Context) -> dict[str, Path]:
    from rvc.assets import mark_demo
    from rvc.infer.demo_assets import write_demo_rvc_assets
    from sparktts.demo import write_demo_model

    root = ctx.scratch / "assets"
    paths = {"spark": root / "Spark-TTS-0.5B", "weights": root / "weights", "assets": root / "assets"}
    if not (paths["spark"] / "config.yaml").is_file():
        write_demo_model(paths["spark"], seed=0)
        write_demo_rvc_assets(paths["weights"], paths["assets"], voice_name=VOICE, seed=0)
        for folder in (paths["spark"], paths["weights"], paths["assets"] / "hubert", paths["assets"] / "rmvpe"):
            mark_demo(folder)
    return paths


def reference_clip(seconds: float = 3.0) -> np.ndarray:
    t = np.arange(int(seconds * 16000)) / 16000
    f0 = 140 + 40 * np.sin(2 * np.pi * 0.5 * t)
    phase = 2 * np.pi * np.cumsum(f0) / 16000
    return (0.3 * sum(np.sin(k * phase) / k for k in range(1, 6))).astype(np.float32)


# ------------------------------------------------------------------------------------------ steps
def step_facts(ctx: Context) -> str:
    facts = torch_facts()
    driver = driver_present()
    report = describe("auto", driver=driver, facts=facts)
    print(json.dumps(report, indent=1))
    if driver:
        print(subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,compute_cap,memory.total",
                              "--format=csv"], capture_output=True, text=True, timeout=30, check=False).stdout)
    if "error" in report:
        raise RuntimeError(str(report["error"]))
    ctx.cuda = report["device"] == "cuda"
    if ctx.cuda:
        import torch

        print(f"TF32: matmul {torch.backends.cuda.matmul.allow_tf32}, cuDNN conv {torch.backends.cudnn.allow_tf32} "
              "(on Ampere+ 'fp32' convolutions are TF32 unless turned off)")
    from gpu_tunings import disk_use

    from rvc.settings import load_settings

    settings = load_settings()
    disk = disk_use({"Spark-TTS": settings.spark_model_dir, "assets": settings.assets_dir,
                     "weights": settings.weights_dir})
    print(disk, flush=True)
    return (f"device {report['device']}, torch {facts.torch_version}, CUDA {facts.cuda_version}, cuDNN "
            f"{facts.cudnn_version}; {disk}")


_CONV = """
import json, torch
device = "cuda" if torch.cuda.is_available() else "cpu"
torch.backends.cudnn.enabled = True
x = torch.randn(1, 16, 64, 128, device=device)
conv = torch.nn.Conv2d(16, 32, 3, padding=1).to(device)
y = conv(x)
if device == "cuda":
    torch.cuda.synchronize()
print(json.dumps({"device": device, "cudnn": torch.backends.cudnn.version(), "mean": float(y.float().mean())}))
"""


def step_conv_under_launcher_env(ctx: Context) -> str:
    from rvc.grpc.launcher import locate_tritonserver, server_environment, system_library_dirs

    env = server_environment(locate_tritonserver(), 1, {})
    search = [part for part in env.get("LD_LIBRARY_PATH", "").split(os.pathsep) if part]
    system = system_library_dirs()
    inherited = os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep)
    added = [part for part in search if part not in inherited]
    bad = [part for part in added if Path(os.path.realpath(part)) in system]
    print(f"LD_LIBRARY_PATH for tritonserver: {search}")
    if bad:
        raise RuntimeError(f"system folders prepended: {bad}")
    run = subprocess.run([sys.executable, "-c", _CONV], env=env, cwd=ctx.scratch, capture_output=True, text=True,
                         timeout=min(120, ctx.left()), check=False)
    if run.returncode != 0:
        raise RuntimeError(f"convolution under the launcher's environment failed:\n{run.stderr[-3000:]}")
    result = json.loads(run.stdout.strip().splitlines()[-1])
    here = torch_facts().cudnn_version
    if ctx.cuda and result["cudnn"] != here:
        raise RuntimeError(f"cuDNN {result['cudnn']} under the launcher's environment, {here} without it")
    return f"conv on {result['device']} (cuDNN {result['cudnn']}); no system folder prepended"


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_config(ctx: Context, repository: Path, name: str) -> TritonServerConfig:
    """A tritonserver on free ports for ``repository``, its log under the scratch folder, its wait within the budget."""
    from rvc.grpc.launcher import TritonServerConfig

    return TritonServerConfig(model_repository=repository, grpc_port=_free_port(), http_port=_free_port(),
                              metrics_port=_free_port(), work_dir=ctx.scratch / f"triton_{name}",
                              startup_timeout_s=max(30.0, min(180.0, ctx.left() - 60)), cpu_only=not ctx.cuda)


def gpu_memory_of(ctx: Context, server: TritonServer) -> dict[int, int]:
    """MiB of GPU memory held by each process of ``server`` (tritonserver and its stubs)."""
    memory = gpu_memory(ctx)
    return {pid: memory[pid] for pid in server.group_members() if pid in memory}


def step_triton(ctx: Context) -> str:
    device = need_cuda(ctx)
    from gpu_precision import float16_head_on_device, stub_precision
    from gpu_tunings import SPARK_VOCAB_ROWS, sampling_syncs

    from rvc.device import instance_gpu_count
    from rvc.grpc.client import TritonSparkClient
    from rvc.grpc.launcher import TritonServer
    from rvc.grpc.model_repository import prepare_model_repository

    paths = demo_assets(ctx)
    reference = reference_clip()
    lines = []
    # as the service places them: on several GPUs every model's instances spread over them (KIND_GPU)
    gpus = instance_gpu_count(device, torch_facts())
    for mode in ("offline", "streaming"):
        repository = prepare_model_repository(ctx.scratch / f"repo_{mode}", model_dir=paths["spark"], mode=mode,
                                              device=device, dtype="auto", gpu_count=gpus)
        started = time.monotonic()
        with TritonServer(server_config(ctx, repository, mode)) as server:
            ready = time.monotonic() - started
            stubs = gpu_memory_of(ctx, server)
            with TritonSparkClient(server.grpc_url, timeout_s=120) as client:
                started = time.monotonic()
                if mode == "offline":
                    audio, _ = client.inference("Checking the GPU.", reference)
                    first = time.monotonic() - started
                else:
                    chunks: list[np.ndarray] = []
                    for chunk in client.stream("Checking the GPU, streaming.", reference):
                        if not chunks:
                            first = time.monotonic() - started
                        chunks.append(chunk)
                    audio = np.concatenate(chunks)
                total = time.monotonic() - started
            if not np.isfinite(audio).all() or audio.size == 0:
                raise RuntimeError(f"{mode}: empty or non-finite audio")
            line = (f"{mode}: ready in {ready:.1f} s; GPU MiB per process {stubs}; {audio.size / 16000:.2f} s of audio "
                    f"in {total:.2f} s (first audio {1000 * first:.0f} ms)")
            print(line, flush=True)
            lines.append(line)
            if ctx.cuda and not stubs:
                raise RuntimeError(f"{mode}: no Triton process holds GPU memory: the models did not go to CUDA")
            lines.append(stub_precision(server.log_path.read_text(errors="replace"), device,
                                        torch_facts().capability if ctx.cuda else None))
            print(lines[-1], flush=True)
    lines.append(float16_head_on_device(paths["spark"], device))
    smoke = device == "cpu"
    lines.append(sampling_syncs(device, vocab_rows=20_000 if smoke else SPARK_VOCAB_ROWS, repeats=2 if smoke else 20))
    return "; ".join(lines) + " [demo weights: timings are not the real model's]"


def synthetic_speech(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    f0 = 150 + 50 * np.sin(2 * np.pi * 0.4 * t + seed)
    phase = 2 * np.pi * np.cumsum(f0) / 16000
    envelope = (0.5 + 0.5 * np.sin(2 * np.pi * 1.5 * t)) ** 2
    return (0.3 * envelope * sum(np.sin(k * phase) / k for k in range(1, 8))
            + 0.005 * rng.standard_normal(t.size)).astype(np.float32)


def step_rvc_pool(ctx: Context) -> str:
    device = need_cuda(ctx)
    lengths = (5.0,) if ctx.smoke and not ctx.cuda else (5.0, 60.0, 300.0)
    from rvc.server import PoolConfig, RVCServer

    try:
        from rvc.infer.params import ConversionParams  # after the worker redesign
    except ImportError:
        from rvc.infer.converter import ConversionParams
    paths = demo_assets(ctx)
    outputs: dict[tuple[str, str, float], np.ndarray] = {}
    lines = []
    for precision in ("fp32", "fp16") if device == "cuda" else ("fp32", "bf16"):
        config = PoolConfig(weights_dir=paths["weights"], hubert_path=paths["assets"] / "hubert" / "hubert_base.pt",
                            rmvpe_path=paths["assets"] / "rmvpe" / "rmvpe.pt", default_voice=VOICE, num_workers=1,
                            device=device, precision=precision, job_timeout_s=240)
        with RVCServer(config) as pool:
            for seconds in lengths:
                for method in ("rmvpe", "pm"):
                    if ctx.left() < 90:
                        raise RuntimeError("out of time budget inside the RVC step")
                    params = ConversionParams(f0_method=method, deterministic=True)
                    started = time.monotonic()
                    result = pool.convert(synthetic_speech(seconds, 1), 16000, params)
                    wall = time.monotonic() - started
                    outputs[(precision, method, seconds)] = result.audio
                    memory = gpu_memory(ctx)
                    held = sum(memory.get(pid, 0) for pid in descendants(os.getpid()))
                    line = f"{precision} {method} {seconds:g} s: {wall:.2f} s (RTF {wall / seconds:.3f}); GPU {held} MiB"
                    print(line, flush=True)
                    lines.append(line)
    half = "fp16" if device == "cuda" else "bf16"
    for method in ("rmvpe", "pm"):
        for seconds in lengths:
            a, b = outputs[("fp32", method, seconds)], outputs[(half, method, seconds)]
            n = min(a.size, b.size)
            rms = float(np.sqrt(np.mean((a[:n] - b[:n]) ** 2)))
            print(f"{half} vs fp32, {method} {seconds:g} s: RMS difference {rms:.2e} (signal RMS "
                  f"{float(np.sqrt(np.mean(a ** 2))):.2e})", flush=True)
    from gpu_tunings import decoder_layouts

    layouts = decoder_layouts(device, 10.0 if device == "cuda" else 0.2, half=True, repeats=3 if device == "cuda" else 1)
    return (f"{len(lines)} conversions; " + rmvpe_chunks_on_device(paths, device, 300.0 if device == "cuda" else 70.0)
            + "; " + layouts)


def rmvpe_chunks_on_device(paths: dict[str, Path], device: str, seconds: float) -> str:
    """Chunked RMVPE against the whole input on CUDA, with the real rmvpe.pt when ASSETS_DIR has it."""
    from rvc.assets import inspect_assets
    from rvc.infer.rmvpe import RMVPE, ChunkPlan
    from rvc.settings import load_settings

    settings = load_settings()
    real = settings.rmvpe_path.is_file() and not inspect_assets(settings).demo
    weights = settings.rmvpe_path if real else paths["assets"] / "rmvpe" / "rmvpe.pt"
    model = RMVPE.from_pretrained(weights, device=device)
    wav = synthetic_speech(seconds, 2)
    whole = RMVPE(model.model, device=device, chunks=ChunkPlan(core=2**40, context=0)).salience(wav)
    chunked = model.salience(wav)
    difference = float(np.abs(whole - chunked).max())
    flips = int((whole.argmax(1) != chunked.argmax(1)).sum())
    kind = "real rmvpe.pt" if real else "demo rmvpe.pt (random weights)"
    if difference > 1e-4 or flips:
        raise RuntimeError(f"RMVPE chunks differ on {device} ({kind}): max {difference:.2e}, {flips} argmax changes")
    return f"RMVPE chunks vs whole, {seconds:g} s on {device} ({kind}): max |d salience| {difference:.2e}, 0 argmax changes"


_STICKY = """
import torch
from rvc.device import classify_cuda_error
x = torch.zeros(4, device="cuda")
try:
    x[torch.tensor([10], device="cuda")] = 1.0  # device-side assert: out-of-bounds index
    torch.cuda.synchronize()
except RuntimeError as exc:
    first = classify_cuda_error(exc)
try:
    torch.ones(1, device="cuda").sum().item()
    after = "recovered"
except RuntimeError as exc:
    after = classify_cuda_error(exc)
print(first, after)
"""


def step_oom(ctx: Context) -> str:
    device = need_cuda(ctx)
    lines = []
    if device == "cuda":
        lines.append(classify_real_cuda_errors())
    lines.append(worker_fault_paths(ctx, device))
    return "; ".join(lines)


def classify_real_cuda_errors() -> str:
    """A real OOM and a real device-side assert through ``rvc.device.classify_cuda_error``."""
    import torch

    from rvc.device import classify_cuda_error

    total = torch.cuda.get_device_properties(0).total_memory
    try:
        torch.empty(int(total * 2), dtype=torch.uint8, device="cuda")
        raise RuntimeError("allocating twice the card's memory did not fail")
    except torch.OutOfMemoryError as exc:
        kind = classify_cuda_error(exc)
    torch.cuda.empty_cache()
    if kind != "oom":
        raise RuntimeError(f"a real CUDA OOM was classified {kind!r}")
    run = subprocess.run([sys.executable, "-c", _STICKY], capture_output=True, text=True, timeout=120, check=False,
                         env={**os.environ, "CUDA_LAUNCH_BLOCKING": "1"})
    words = run.stdout.split()
    if words[:1] != ["sticky"]:
        raise RuntimeError(f"a device-side assert was not classified sticky: {run.stdout} {run.stderr[-1500:]}")
    line = f"classification: real OOM -> oom; device assert -> {words[0]}, next call -> {words[1]}"
    print(line, flush=True)
    return line


def worker_fault_paths(ctx: Context, device: str) -> str:
    """The pool's answer to CUDA faults in a real worker on ``device``.

    OOM: on CUDA a real one, by filling the card from this process while the worker converts 60 s
    (the worker must answer DeviceOutOfMemory, free its cache and convert the next input itself);
    where the card cannot be filled that way (or on the CPU smoke run), the worker's test-only
    injection (RVC_FAULT_INJECTION, rvc/server/faults.py) raises torch's OOM instead. Sticky:
    injected (a real device-side assert cannot be aimed at a job): the job fails, the worker exits,
    a replacement on the same device converts the next input.
    """
    from rvc.errors import DeviceOutOfMemory, WorkerCrashed
    from rvc.infer.params import ConversionParams
    from rvc.server import PoolConfig, RVCServer

    paths = demo_assets(ctx)
    config = PoolConfig(weights_dir=paths["weights"], hubert_path=paths["assets"] / "hubert" / "hubert_base.pt",
                        rmvpe_path=paths["assets"] / "rmvpe" / "rmvpe.pt", default_voice=VOICE, num_workers=1,
                        device=device, job_timeout_s=120)
    params = ConversionParams(f0_method="rmvpe", deterministic=True)
    lines = []
    if device == "cuda":
        import torch

        with RVCServer(config) as pool:
            (first,) = {worker.pid for worker in pool.status().workers}
            free, _ = torch.cuda.mem_get_info()
            hog = torch.empty(max(0, free - 64 * 2**20), dtype=torch.uint8, device="cuda")
            try:
                pool.convert(synthetic_speech(60.0, 3), 16000, params)
                lines.append("real OOM: the worker converted 60 s in the last 64 MiB (not provoked; injected below)")
            except DeviceOutOfMemory as exc:
                lines.append(f"real OOM -> DeviceOutOfMemory (Retry-After {exc.retry_after_s:g} s)")
            finally:
                del hog
                torch.cuda.empty_cache()
            pool.convert(synthetic_speech(5.0, 4), 16000, params)
            status = pool.status()
            if {worker.pid for worker in status.workers} != {first} or status.workers_crashed:
                raise RuntimeError(f"the worker did not serve on after the OOM: {status.workers}")
            lines.append(f"same worker converted the next input, GPU cache {status.workers[0].gpu_reserved_mb} MiB")
    # per worker process: job 2 OOM, job 4 sticky; the replacement counts from 1 again (job 1 clean)
    injected = {"RVC_TESTING": "1", "RVC_FAULT_INJECTION": "oom-on-job-2,sticky-on-job-4"}
    saved = {name: os.environ.get(name) for name in injected}
    os.environ.update(injected)  # read once by the workers this pool spawns
    try:
        with RVCServer(config.with_changes(warmup=False)) as pool:
            (first,) = {worker.pid for worker in pool.status().workers}
            pool.convert(synthetic_speech(2.0, 4), 16000, params)
            try:
                pool.convert(synthetic_speech(2.0, 5), 16000, params)
                raise RuntimeError("the injected OOM did not fail its job")
            except DeviceOutOfMemory as exc:
                lines.append(f"injected OOM -> DeviceOutOfMemory (Retry-After {exc.retry_after_s:g} s)")
            pool.convert(synthetic_speech(2.0, 6), 16000, params)
            if {worker.pid for worker in pool.status().workers} != {first}:
                raise RuntimeError("the worker did not serve on after the injected OOM")
            try:
                pool.convert(synthetic_speech(2.0, 7), 16000, params)
                raise RuntimeError("the injected sticky error did not fail its job")
            except WorkerCrashed:
                pass
            started = time.monotonic()
            while not ({worker.pid for worker in pool.status().workers if worker.state == "idle"} - {first}):
                if time.monotonic() - started > 120:
                    raise RuntimeError("no replacement worker after a sticky CUDA error")
                time.sleep(0.2)
            pool.convert(synthetic_speech(2.0, 8), 16000, params)
            replaced = time.monotonic() - started
            (worker,) = pool.status().workers
            lines.append(f"injected sticky error -> WorkerCrashed, worker replaced in {replaced:.1f} s on "
                         f"{worker.device}, next input converted")
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    for line in lines:
        print(line, flush=True)
    return "; ".join(lines)


def step_service(ctx: Context) -> str:
    device = need_cuda(ctx)
    import httpx

    paths = demo_assets(ctx)
    api_port = _free_port()
    env = {**os.environ, "SPARK_MODEL_DIR": str(paths["spark"]), "WEIGHTS_DIR": str(paths["weights"]),
           "ASSETS_DIR": str(paths["assets"]), "RUN_DIR": str(ctx.scratch / "run"),
           "STATE_DIR": str(ctx.scratch / "state"), "VOICES_DIR": str(ctx.scratch / "voices"),
           "TRITON_MODEL_REPO": str(ctx.scratch / "service_repo"), "API_PORT": str(api_port),
           "TRITON_GRPC_PORT": str(_free_port()), "TRITON_HTTP_PORT": str(_free_port()),
           "TRITON_METRICS_PORT": str(_free_port()), "DEVICE": "auto" if device == "cuda" else "cpu", "RVC_MODEL": f"{VOICE}.pth"}
    env.pop("RVC_WORKERS", None)
    log = open(ctx.scratch / "service.log", "wb")  # noqa: SIM115 - closed below
    service = subprocess.Popen([sys.executable, "-m", "rvc.launch", "--no-download"], env=env, cwd=ctx.scratch,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{api_port}"
    try:
        started = time.monotonic()
        while True:
            if service.poll() is not None:
                raise RuntimeError("the service exited:\n" + (ctx.scratch / "service.log").read_text()[-3000:])
            try:
                if httpx.get(f"{base}/health", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() - started > min(240, ctx.left() - 60):
                raise RuntimeError("the service was not healthy in time")
            time.sleep(1)
        ready = time.monotonic() - started
        import io

        import soundfile

        buffer = io.BytesIO()
        soundfile.write(buffer, reference_clip(), 16000, format="WAV")
        started = time.monotonic()
        response = httpx.post(f"{base}/synthesize", data={"text": "Hello from the GPU check."},
                              files={"reference_audio": ("ref.wav", buffer.getvalue(), "audio/wav")}, timeout=300)
        took = time.monotonic() - started
        if response.status_code != 200:
            raise RuntimeError(f"/synthesize answered {response.status_code}: {response.text[:500]}")
        status = httpx.get(f"{base}/status", timeout=10).json()
        print(json.dumps(status, indent=1)[:3000])
        summary = f"healthy in {ready:.0f} s; /synthesize {took:.2f} s ({len(response.content)} bytes)"
        return summary + "; " + check_placement(status["placement"], device)
    finally:
        service.terminate()
        try:
            service.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(service.pid, 9)
            service.wait()
        log.close()


def check_placement(parts: list[dict[str, str | None]], device: str) -> str:
    """/status's placement: the gateway on the CPU without a dtype, every Triton model and RVC worker
    on ``device`` (or one of its cards), the codec float32."""
    for part in parts:
        print(f"  {part['part']:<28} {part['device']:<10} {part['dtype']}", flush=True)
    by_name = {str(part["part"]): part for part in parts}
    wrong = [part for name, part in by_name.items() if name != "gateway"
             and not str(part["device"]).startswith(device)]
    codec = [by_name.get(f"triton.{model}", {}).get("dtype") for model in ("audio_tokenizer", "vocoder")]
    if by_name.get("gateway", {}).get("device") != "cpu" or wrong or codec != ["float32", "float32"]:
        raise RuntimeError(f"/status placement is not what was asked (device {device}): {parts}")
    if not any(name.startswith("rvc.worker.") for name in by_name):
        raise RuntimeError(f"/status placement lists no RVC worker: {parts}")
    return f"/status: {len(parts)} parts placed as asked ({device}; codec float32)"


TRTLLM_RESERVE_S = 240  # what step 7 leaves step 8 where the TensorRT-LLM toolchain is present


def trtllm_here() -> bool:
    return shutil.which("trtllm-build") is not None


def step_throughput(ctx: Context) -> str:
    """bench_triton's offline and streaming modes at concurrency 1 and 4 beside the official L20 table;
    the real Spark-TTS-0.5B where SPARK_MODEL_DIR holds it, else the demo weights (then not comparable)."""
    device = need_cuda(ctx)
    from gpu_throughput import measure_beside_official

    from rvc.assets import DEMO_MARKER
    from rvc.settings import load_settings

    spark = load_settings().spark_model_dir
    real = (spark / "config.yaml").is_file() and not (spark / DEMO_MARKER).is_file()
    smoke = device == "cpu"
    summary = measure_beside_official(spark if real else demo_assets(ctx)["spark"], device, ctx.scratch,
                                      budget_s=ctx.left() - 20 - TRTLLM_RESERVE_S * trtllm_here(),
                                      levels=(1,) if smoke else (1, 4),
                                      requests=1 if smoke else 4, max_new_tokens=20 if smoke else 300)
    return summary + ("" if real else " [demo weights: not comparable to the official figures]")


def step_tensorrt_llm(ctx: Context) -> str:
    """LLM_BACKEND=tensorrtllm, never run before a GPU: run.sh stage 1 (the image's own python converts,
    trtllm-build builds float32 logits and the KV pool batch x (prompt + budget)) and stage 2 on the
    demo LLM, then one offline synthesis through the engine. Only in NVIDIA's TensorRT-LLM image."""
    need_cuda(ctx, smoke_ok=False)
    if not trtllm_here():
        raise Skip("needs NVIDIA's TensorRT-LLM image (tritonserver:<release>-trtllm-python-py3): no trtllm-build here")
    from rvc.grpc.client import TritonSparkClient
    from rvc.grpc.launcher import TritonServer

    paths = demo_assets(ctx)
    repository, engines = ctx.scratch / "repo_trtllm", ctx.scratch / "trt_engines"
    env = {**os.environ, "SPARK_MODEL_DIR": str(paths["spark"]), "TRITON_MODEL_REPO": str(repository),
           "TRT_ENGINE_DIR": str(engines), "DEVICE": "cuda", "PYTHON": sys.executable, "MAX_NEW_TOKENS": "300",
           "TRITON_MAX_BATCH_SIZE": "4", "TRTLLM_MAX_INPUT_LEN": "1024"}
    started = time.monotonic()
    built = subprocess.run(["bash", str(ROOT / "triton" / "run.sh"), "1", "2", "offline"], env=env, cwd=ctx.scratch,
                           capture_output=True, text=True, timeout=max(30.0, min(300.0, ctx.left() - 90)), check=False)
    print(built.stdout[-2000:], flush=True)
    if built.returncode != 0 or not (engines / "config.json").is_file():
        raise RuntimeError(f"run.sh 1 2 failed ({built.returncode}):\n{built.stderr[-3000:]}")
    build_s = time.monotonic() - started
    started = time.monotonic()
    with TritonServer(server_config(ctx, repository, "trtllm")) as server:
        ready = time.monotonic() - started
        held = gpu_memory_of(ctx, server)
        with TritonSparkClient(server.grpc_url, timeout_s=120) as client:
            started = time.monotonic()
            audio, _ = client.inference("Checking the TensorRT-LLM engine.", reference_clip())
            took = time.monotonic() - started
    if audio.size == 0 or not np.isfinite(audio).all():
        raise RuntimeError("the TensorRT-LLM engine gave empty or non-finite audio")
    return (f"engine built and repository prepared in {build_s:.0f} s; ready in {ready:.1f} s; GPU MiB per process "
            f"{held}; {audio.size / 16000:.2f} s of audio in {took:.2f} s [demo weights]")


STEPS: list[tuple[str, Callable[[Context], str]]] = [
    ("1 torch and driver facts", step_facts),
    ("2 convolution under the launcher's environment", step_conv_under_launcher_env),
    ("3 Triton on CUDA (demo models)", step_triton),
    ("4 RVC pool on CUDA", step_rvc_pool),
    ("5 CUDA OOM and sticky errors", step_oom),
    ("6 /synthesize end to end, /status", step_service),
    ("7 tokens/s, RTF, first chunk beside the official L20 figures", step_throughput),
    ("8 LLM_BACKEND=tensorrtllm: run.sh stages 1-2 and one synthesis", step_tensorrt_llm),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget-s", type=float, default=470.0, help="stop starting steps after this (default 470)")
    parser.add_argument("--scratch", type=Path, default=None, help="work folder (default: a temporary one)")
    parser.add_argument("--smoke-on-cpu", action="store_true",
                        help="without a GPU, run steps 3-6 on the CPU (short) to test this script; no GPU result")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as temporary:
        ctx = Context(cuda=False, smoke=args.smoke_on_cpu, scratch=args.scratch or Path(temporary), deadline=time.monotonic() + args.budget_s,
                      results=[])
        ctx.scratch.mkdir(parents=True, exist_ok=True)
        for name, step in STEPS:
            print(f"\n=== step {name}", flush=True)
            started = time.monotonic()
            ctx.smoked = False
            try:
                if ctx.left() < 20:
                    raise Skip("the 8-minute budget is spent")
                outcome, detail = "ok", step(ctx)
            except Skip as exc:
                outcome, detail = "SKIP", str(exc)
            except Pending as exc:
                outcome, detail = "PENDING", str(exc)
            except Exception as exc:  # noqa: BLE001 - a failed step is reported, and the next one still runs
                outcome, detail = "FAIL", f"{type(exc).__name__}: {exc}"
            if ctx.smoked:
                outcome, detail = f"{outcome}, CPU smoke", "ran on the CPU to test this script, NOT a GPU result: " + detail
            ctx.results.append((name, outcome, detail))
            print(f"[{outcome}] {name} ({time.monotonic() - started:.1f} s): {detail}", flush=True)
    print("\n=== summary")
    for name, outcome, detail in ctx.results:
        print(f"[{outcome:>7}] {name}: {detail[:300]}")
    skipped = [name for name, outcome, _ in ctx.results if outcome.startswith("SKIP") or "CPU smoke" in outcome]
    if skipped:
        print(f"\nnot checked here (need a CUDA GPU): {', '.join(skipped)}")
    return 1 if any(outcome == "FAIL" for _, outcome, _ in ctx.results) else 0


if __name__ == "__main__":
    sys.exit(main())
