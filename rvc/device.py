"""Where the models run, and in which precision: one decision for Triton and the RVC workers.

"auto" used to be decided twice, by different tests: Triton by ``/dev/nvidiactl``, the workers by
``torch.cuda.is_available()``. With the CPU torch wheel on a GPU host (what the bare-metal setup
installs) Triton refused to load while RVC quietly ran on the CPU. Here "auto" is decided once,
from the same facts, and a driver beside a CPU build of torch is an error that names the fix.

The module does not import torch at import time (the gateway process never imports it): the
rules are pure functions of ``TorchFacts``, which a worker reads in process (``torch_facts``) and
the gateway reads from a child interpreter (``probe_torch``). Capability rules:

* bf16 needs compute capability >= 8.0 (Ampere); Turing (Colab's T4, 7.5) and Volta have none,
  so the half type there is fp16, and an explicit bf16 request is refused, not emulated;
* the codec (BiCodec, wav2vec2) stays float32, as in the official Spark-TTS code: only the LLM
  takes a half type.

The CUDA-fault rules (``classify_cuda_error``, ``gpu_memory_exceeded``) are torch-free too, so the
worker loop can use them on any exception without importing ``torch.cuda``.

    python -m rvc.device [--device auto]     # the facts and decisions as JSON (bench/gpu_check.sh)
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from rvc.errors import ConfigError
from sparktts.precision import AUTO, BF16_CAPABILITY, CODEC_DTYPE, apply_tf32_rule, llm_dtype, supports_bf16

__all__ = [
    "AUTO_PRECISION",
    "BF16_CAPABILITY",
    "CODEC_DTYPE",
    "CudaErrorKind",
    "DeviceKind",
    "GpuFacts",
    "PartPlacement",
    "RVC_DECODER_DTYPES",
    "RVC_EXTRACTOR_DTYPES",
    "RVC_PRECISION_SETTINGS",
    "TorchFacts",
    "apply_precision_flags",
    "check_llm_dtype",
    "check_rvc_precision",
    "classify_cuda_error",
    "decide_device",
    "default_half_dtype",
    "driver_present",
    "gpu_memory_exceeded",
    "instance_group",
    "instance_gpu_count",
    "kv_cache_tokens",
    "placements",
    "probe_torch",
    "resolve_device",
    "resolve_llm_dtype",
    "supports_bf16",
    "torch_facts",
]

DeviceKind = Literal["cpu", "cuda"]
CudaErrorKind = Literal["oom", "sticky", "other"]
Capability = tuple[int, int]

RVC_DECODER_DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}  # RVC_PRECISION -> dtype
# RVC_PRECISION -> HuBERT's and RMVPE's weights: fp16 casts them too, as the official half mode does
# (``.half()`` on every model); bf16 stays a decoder-only trade (both would run several times slower in
# bf16 on CPUs without native bf16, and the GPU half mode is fp16)
RVC_EXTRACTOR_DTYPES = {"fp32": "float32", "bf16": "float32", "fp16": "float16"}
AUTO_PRECISION = "auto"  # RVC_PRECISION's default: each worker resolves it (rvc.gpu_rule.rvc_precision)
RVC_PRECISION_SETTINGS = (AUTO_PRECISION, *RVC_DECODER_DTYPES)
# CODEC_DTYPE, BF16_CAPABILITY, supports_bf16 and the LLM's dtype rule live in sparktts.precision (the
# Triton stubs apply them there, and sparktts may not import rvc); re-exported here for the service.
CUDA_TORCH_HINT = (
    "install a CUDA build of torch==2.13.0 (e.g. pip install torch==2.13.0 --index-url "
    "https://download.pytorch.org/whl/cu126), or set DEVICE=cpu to run on the CPU on purpose"
)


@dataclass(frozen=True)
class GpuFacts:
    """One visible CUDA device as torch sees it."""

    name: str
    capability: Capability
    total_memory_mib: int


@dataclass(frozen=True)
class TorchFacts:
    """What the installed torch can do here; ``cuda_version`` is None for a CPU build (``2.13.0+cpu``)."""

    torch_version: str
    cuda_version: str | None
    cudnn_version: int | None
    cuda_available: bool
    gpus: tuple[GpuFacts, ...] = ()

    @property
    def cuda_build(self) -> bool:
        return self.cuda_version is not None

    @property
    def capability(self) -> Capability | None:
        """The lowest capability among the visible GPUs (what every instance can rely on)."""
        return min((gpu.capability for gpu in self.gpus), default=None)

    @classmethod
    def from_json(cls, text: str) -> TorchFacts:
        data = json.loads(text)
        gpus = tuple(
            GpuFacts(gpu["name"], (int(gpu["capability"][0]), int(gpu["capability"][1])), int(gpu["total_memory_mib"]))
            for gpu in data.get("gpus", ())
        )
        return cls(data["torch_version"], data["cuda_version"], data["cudnn_version"], bool(data["cuda_available"]), gpus)

    def to_json(self) -> str:
        return json.dumps(asdict(self))


# ------------------------------------------------------------------------------------------ facts
def driver_present(control_device: Path = Path("/dev/nvidiactl")) -> bool:
    """True when an NVIDIA driver is visible (its control device, or nvidia-smi on PATH)."""
    return control_device.exists() or shutil.which("nvidia-smi") is not None


def torch_facts() -> TorchFacts:
    """Read the facts from torch in this process (workers, Triton stubs: they import torch anyway)."""
    import torch

    cuda_available = bool(torch.cuda.is_available())
    gpus: list[GpuFacts] = []
    if cuda_available:
        for index in range(torch.cuda.device_count()):
            properties = torch.cuda.get_device_properties(index)
            gpus.append(GpuFacts(properties.name, (properties.major, properties.minor),
                                 int(properties.total_memory // 2**20)))
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return TorchFacts(torch.__version__, torch.version.cuda, cudnn, cuda_available, tuple(gpus))


_PROBE = "from rvc.device import torch_facts; print(torch_facts().to_json())"


def probe_torch(python: str | None = None, timeout_s: float = 120.0) -> TorchFacts:
    """The facts from a child interpreter (the same venv the stubs and workers use) for a process
    that must not import torch itself. ConfigError when torch cannot be imported there.
    """
    command = [python or sys.executable, "-c", _PROBE]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"could not ask torch which devices it sees ({exc})") from exc
    if result.returncode != 0:
        raise ConfigError(f"could not ask torch which devices it sees: {result.stderr.strip()[-2000:]}")
    return TorchFacts.from_json(result.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------ decisions
def resolve_device(requested: str, *, driver: bool, facts: TorchFacts) -> DeviceKind:
    """DEVICE ("auto", "cpu", "cuda") -> "cpu" or "cuda", or ConfigError naming the fix.

    "auto" is CUDA when a driver is present. A driver with a CPU build of torch, or with a CUDA
    build that sees no GPU, is an error: running silently on the CPU of a GPU machine is the
    failure this exists to prevent. DEVICE=cpu is the explicit way to accept the CPU.
    """
    if requested == "cpu":
        return "cpu"
    if requested not in ("auto", "cuda"):
        raise ConfigError(f"DEVICE={requested!r}: must be auto, cpu or cuda", field="DEVICE")
    if requested == "auto" and not driver:
        return "cpu"
    where = "an NVIDIA driver is present" if requested == "auto" else "DEVICE=cuda"
    if not facts.cuda_build:
        raise ConfigError(
            f"{where} but torch {facts.torch_version} is a CPU-only build (torch.version.cuda is None): "
            + CUDA_TORCH_HINT, field="DEVICE",
        )
    if not facts.cuda_available or not facts.gpus:
        raise ConfigError(
            f"{where} but torch {facts.torch_version} (CUDA {facts.cuda_version}) sees no GPU: check that "
            "the driver supports this CUDA version (nvidia-smi) and that the container runs with --gpus all, "
            "or set DEVICE=cpu", field="DEVICE",
        )
    return "cuda"


def decide_device(
    requested: str, rvc_precision: str, *, driver: bool | None = None, probe: Callable[[], TorchFacts] = probe_torch
) -> DeviceKind:
    """DEVICE resolved, and RVC_PRECISION checked against it, in a process that must not import
    torch (the RVC daemon, its control tool): torch is asked in a child interpreter, and only when
    the answer can matter (DEVICE=cpu, or "auto" without a driver, is the CPU whatever torch is).
    """
    driver = driver_present() if driver is None else driver
    device: DeviceKind = "cpu"
    capability: Capability | None = None
    if requested != "cpu" and (requested != "auto" or driver):
        facts = probe()
        device = resolve_device(requested, driver=driver, facts=facts)
        capability = facts.capability if device == "cuda" else None
    elif requested not in ("auto", "cpu"):
        raise ConfigError(f"DEVICE={requested!r}: must be auto, cpu or cuda", field="DEVICE")
    check_rvc_precision(rvc_precision, device, capability)
    return device


def default_half_dtype(capability: Capability) -> Literal["bfloat16", "float16"]:
    """The half type for a GPU: bf16 from Ampere on, fp16 below (Turing, Volta have no bf16)."""
    return "float16" if llm_dtype(AUTO, "cuda", capability) == "float16" else "bfloat16"


def _gpu_words(capability: Capability) -> str:
    return f"this GPU has compute capability {capability[0]}.{capability[1]}"


def check_rvc_precision(precision: str, device: DeviceKind, capability: Capability | None) -> None:
    """RVC_PRECISION against the device: fp16 needs CUDA, bf16 on CUDA needs capability >= 8.0.

    "auto" passes everywhere: it becomes a dtype the worker's card runs (``rvc.gpu_rule.rvc_precision``).
    """
    if precision not in RVC_PRECISION_SETTINGS:
        raise ConfigError(f"RVC_PRECISION={precision!r}: must be auto, fp32, bf16 or fp16", field="RVC_PRECISION")
    if precision == "fp16" and device != "cuda":
        raise ConfigError("RVC_PRECISION=fp16 needs a CUDA device; use bf16 or fp32 on the CPU",
                          field="RVC_PRECISION")
    if precision == "bf16" and device == "cuda" and capability is not None and not supports_bf16(capability):
        raise ConfigError(
            f"RVC_PRECISION=bf16 needs compute capability >= 8.0 (Ampere) and {_gpu_words(capability)}: "
            "use RVC_PRECISION=fp16 or fp32", field="RVC_PRECISION",
        )


def resolve_llm_dtype(
    requested: str, device: DeviceKind, capability: Capability | None, variable: str, gpu_name: str = ""
) -> str:
    """``sparktts.precision.llm_dtype`` for the service: "auto" resolved for the device, a dtype the
    card cannot run refused with a ConfigError that names ``variable`` (LLM_DTYPE, TRT_DTYPE)."""
    try:
        return llm_dtype(requested, device, capability, gpu_name=gpu_name, variable=variable)
    except ValueError as exc:
        raise ConfigError(str(exc), field=variable) from exc


def check_llm_dtype(dtype: str, device: DeviceKind, capability: Capability | None, variable: str) -> None:
    """A Triton/TensorRT-LLM dtype against the device; ``variable`` names the setting in the error."""
    resolve_llm_dtype(dtype, device, capability, variable)


def kv_cache_tokens(max_batch_size: int, prompt_tokens: int, max_new_tokens: int) -> int:
    """Paged KV pool for TensorRT-LLM: every batch row may hold a full prompt plus its whole budget.

    The official runtime's 2560 tokens is less than one 3000-token budget, so a long utterance
    cannot finish, and two to four short ones fill it.
    """
    for name, value in (("max_batch_size", max_batch_size), ("prompt_tokens", prompt_tokens),
                        ("max_new_tokens", max_new_tokens)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    return max_batch_size * (prompt_tokens + max_new_tokens)


def apply_precision_flags(precision: str) -> None:
    """Make "fp32" mean fp32 on Ampere and newer: cuDNN convolutions default to TF32 there (10-bit
    mantissa), so the "exact" setting would not be exact. Call once per process before the first
    convolution (workers); the half precisions leave TF32 on, where it costs nothing extra.
    """
    apply_tf32_rule(RVC_DECODER_DTYPES.get(precision, precision), "cuda")


def instance_group(device: DeviceKind, gpu_count: int, count: int) -> str:
    """The ``instance_group`` of a Triton model's config.pbtxt for this placement.

    One GPU (or the CPU): ``KIND_CPU`` with the model choosing its device itself, as the official
    runtime does. Several GPUs: ``KIND_GPU`` over all of them, so Triton gives each instance its own
    card (the model reads ``args["model_instance_device_id"]``) instead of stacking all on GPU 0.
    """
    if count < 1 or gpu_count < 0:
        raise ValueError(f"count must be >= 1 and gpu_count >= 0, got count={count}, gpu_count={gpu_count}")
    if device == "cuda" and gpu_count > 1:
        gpus = ", ".join(str(index) for index in range(gpu_count))
        return f"instance_group [ {{ kind: KIND_GPU count: {count} gpus: [ {gpus} ] }} ]"
    return f"instance_group [ {{ kind: KIND_CPU count: {count} }} ]"


def instance_gpu_count(device: DeviceKind, facts: TorchFacts) -> int:
    """How many GPUs Triton's instances spread over (``instance_group``'s ``gpu_count``): every card
    torch sees on CUDA, none on the CPU. The service (``rvc.launch.place``) and run.sh's repository
    (``triton/scripts/prepare_repository.py --gpu-count auto``) count them alike.
    """
    return len(facts.gpus) if device == "cuda" else 0


@dataclass(frozen=True)
class PartPlacement:
    """Where one part of the service runs, for /status and /health; ``dtype`` None for a part that
    runs no model (the gateway). ``device`` may carry an index ("cuda:1") or a list of cards
    ("cuda:0,1" for Triton instances spread with KIND_GPU).
    """

    part: str
    device: str
    dtype: str | None


def placements(device: DeviceKind, rvc_precision: str, llm_dtype: str, llm_backend: str) -> tuple[PartPlacement, ...]:
    """Every part's device and dtype: the codec always float32, the LLM its own dtype, the RVC
    decoder the precision, HuBERT and RMVPE float16 in fp16 and float32 otherwise.
    ``rvc_precision`` is a resolved one: "auto" names no dtype until a worker knows its card.
    """
    if rvc_precision not in RVC_DECODER_DTYPES:
        raise ValueError(f"rvc_precision must be resolved to one of {sorted(RVC_DECODER_DTYPES)}, got "
                         f"{rvc_precision!r} (rvc.gpu_rule.rvc_precision resolves auto)")
    decoder, extractors = RVC_DECODER_DTYPES[rvc_precision], RVC_EXTRACTOR_DTYPES[rvc_precision]
    # ONNX Runtime runs the int8 export on the CPU whatever the device (sparktts.onnx_export)
    llm = ("cpu", "int8") if llm_backend == "onnxruntime" else (device, llm_dtype)
    return (
        PartPlacement("tts.audio_tokenizer", device, CODEC_DTYPE),
        PartPlacement("tts.vocoder", device, CODEC_DTYPE),
        PartPlacement(f"tts.llm ({llm_backend})", *llm),
        PartPlacement("rvc.hubert", device, extractors),
        PartPlacement("rvc.rmvpe", device, extractors),
        PartPlacement("rvc.decoder", device, decoder),
    )


# ------------------------------------------------------------------------------------------ CUDA faults
# Errors after which the CUDA context is unusable: every later call in the process fails the same way.
_STICKY_MARKERS = (
    "illegal memory access",
    "device-side assert",
    "unspecified launch failure",
    "misaligned address",
    "illegal instruction",
    "hardware stack error",
    "uncorrectable ecc error",
    "invalid program counter",
    "the launch timed out",
    "cudaerrorillegaladdress",
    "cudaerrorassert",
    "cudaerrorlaunchfailure",
)
_OOM_TYPES = ("OutOfMemoryError",)  # torch.OutOfMemoryError, alias torch.cuda.OutOfMemoryError
_OOM_MARKERS = ("cuda out of memory", "cuda error: out of memory", "cublas_status_alloc_failed")


def classify_cuda_error(exc: BaseException) -> CudaErrorKind:
    """"oom" (free the cache, answer 503 with Retry-After), "sticky" (end the worker: its context is
    poisoned) or "other" (an ordinary failure). Follows ``__cause__``/``__context__``, because the
    model code may have wrapped the CUDA error in its own exception.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    found: CudaErrorKind = "other"
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        message = str(current).lower()
        if any(marker in message for marker in _STICKY_MARKERS):
            return "sticky"  # outranks OOM: a poisoned context cannot be saved by freeing memory
        if type(current).__name__ in _OOM_TYPES or any(marker in message for marker in _OOM_MARKERS):
            found = "oom"
        current = current.__cause__ or current.__context__
    return found


def gpu_memory_exceeded(reserved_mib: float, limit_mib: float) -> bool:
    """Recycle a worker when its CUDA caching allocator holds more than ``limit_mib`` (0 = never).

    ``reserved`` (not ``allocated``) is what the process keeps from other processes on the card.
    """
    if limit_mib < 0 or reserved_mib < 0:
        raise ValueError(f"memory figures must be >= 0, got reserved={reserved_mib}, limit={limit_mib}")
    return limit_mib > 0 and reserved_mib > limit_mib


# ------------------------------------------------------------------------------------------ CLI
def describe(requested: str, *, driver: bool, facts: TorchFacts) -> dict[str, object]:
    """The facts and every decision, for people and scripts (``python -m rvc.device``)."""
    report: dict[str, object] = {"driver_present": driver, **json.loads(facts.to_json()), "requested": requested}
    try:
        device = resolve_device(requested, driver=driver, facts=facts)
    except ConfigError as exc:
        report["error"] = exc.message
        return report
    capability = facts.capability if device == "cuda" else None
    report.update(
        device=device,
        bf16=supports_bf16(capability),
        half_dtype=default_half_dtype(capability) if capability is not None else "bfloat16",
        llm_dtype=llm_dtype(AUTO, device, capability),  # what LLM_DTYPE=auto runs here
        codec_dtype=CODEC_DTYPE,
    )
    return report


def main(argv: list[str] | None = None, facts_source: Callable[[], TorchFacts] = torch_facts) -> int:
    parser = argparse.ArgumentParser(description="Print which device and dtypes the service would use here.")
    parser.add_argument("--device", default="auto", help="the DEVICE setting to resolve (default auto)")
    parser.add_argument("--field", help="print only this field of the report (e.g. half_dtype)")
    args = parser.parse_args(argv)
    report = describe(args.device, driver=driver_present(), facts=facts_source())
    if args.field:
        if args.field not in report:
            print(report.get("error", f"no field {args.field}"), file=sys.stderr)
            return 1
        print(report[args.field])
        return 0
    print(json.dumps(report, indent=2))
    return 1 if "error" in report else 0


if __name__ == "__main__":
    sys.exit(main())
