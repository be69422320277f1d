"""The official WebUI main's GPU rule for RVC inference (``configs/config.py``, ``get_device_dtype_sm``).

``rvc.device`` decides CPU or CUDA once for the whole service; this module is what main adds on top
for RVC, as pure functions of the same ``TorchFacts`` (no torch import):

* a GPU is eligible with at least 4 GB (main counts total memory in GiB plus 0.4) and compute
  capability 5.3; below that RVC stays on the CPU;
* capability 6.1 (Pascal consumer cards) and GTX 16xx (7.5 with "16nn" in the name) run fp32, any
  other capability above 6.1 runs fp16; 5.3 to 6.0 count as ineligible, as in main;
* of several GPUs, the one with the highest (capability, memory) converts;
* the segment lengths follow the dtype (``x_pad``, ``x_query``, ``x_center``, ``x_max`` in seconds):
  fp16 (3, 10, 60, 65), fp32 (1, 6, 38, 41), and (1, 5, 30, 32) on a GPU of at most 4 GB.

With DEVICE=auto a worker that lands on CUDA takes this rule's card and segment lengths. The dtype
is the decoder's too when RVC_PRECISION=auto (the default): ``rvc_precision`` resolves it for the
card the worker converts on, whether DEVICE picked it or named it, and the CPU keeps fp32, so every
CPU result stays what it was. An explicit fp32, bf16 or fp16 wins over the rule.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from rvc.device import AUTO_PRECISION, RVC_DECODER_DTYPES, GpuFacts, TorchFacts

__all__ = [
    "PrecisionChoice",
    "RvcPlacement",
    "SegmentSeconds",
    "gpu_rule",
    "rvc_placement",
    "rvc_precision",
    "segment_seconds",
]

MIN_MEMORY_GB = 4.0
MIN_CAPABILITY = 5.3
FP32_CAPABILITY = 6.1
_MEMORY_SLACK_GB = 0.4  # main adds it to total_memory / 2**30 before comparing
_SIXTEEN_SERIES = re.compile(r"16\d{2}")


@dataclass(frozen=True)
class SegmentSeconds:
    """The reference's padding and split lengths in seconds (``rvc.infer.pipeline.SegmentConfig``)."""

    x_pad: int
    x_query: int
    x_center: int
    x_max: int


@dataclass(frozen=True)
class RvcPlacement:
    """Where RVC converts under main's rule: ``device`` "cpu" or "cuda:N", the card's dtype, and why."""

    device: str
    dtype: Literal["float32", "float16"]
    segments: SegmentSeconds
    reason: str


@dataclass(frozen=True)
class PrecisionChoice:
    """The decoder precision a worker runs (``precision``: fp32, bf16 or fp16), the RVC_PRECISION it
    came from (``setting``) and, for "auto", why; /status shows ``source`` so "auto" never hides a dtype.
    """

    setting: str
    precision: str
    reason: str = ""

    @property
    def source(self) -> str:
        """E.g. "auto -> fp16 (main's rule: NVIDIA L4, capability 8.9)", or "fp32" when set explicitly."""
        if self.setting != AUTO_PRECISION:
            return self.precision
        return f"{AUTO_PRECISION} -> {self.precision} ({self.reason})"


def _memory_gb(gpu: GpuFacts) -> float:
    return gpu.total_memory_mib / 1024 + _MEMORY_SLACK_GB


def _capability(gpu: GpuFacts) -> float:
    return gpu.capability[0] + gpu.capability[1] / 10


def gpu_rule(gpu: GpuFacts) -> Literal["float32", "float16"] | None:
    """The dtype main runs RVC in on ``gpu``, or None when the card is not eligible (RVC on the CPU)."""
    capability = _capability(gpu)
    if _memory_gb(gpu) < MIN_MEMORY_GB or capability < MIN_CAPABILITY:
        return None
    if capability == FP32_CAPABILITY or (capability == 7.5 and _SIXTEEN_SERIES.search(gpu.name)):
        return "float32"
    if capability > FP32_CAPABILITY:
        return "float16"
    return None


def segment_seconds(dtype: str, gpu_memory_gb: float | None) -> SegmentSeconds:
    """Main's ``device_config``: lengths by dtype, shorter on a GPU of at most 4 GB (None: the CPU)."""
    if gpu_memory_gb is not None and int(gpu_memory_gb) <= 4:
        return SegmentSeconds(1, 5, 30, 32)
    if dtype == "float16":
        return SegmentSeconds(3, 10, 60, 65)
    return SegmentSeconds(1, 6, 38, 41)


def rvc_placement(facts: TorchFacts) -> RvcPlacement:
    """The best eligible GPU by (capability, memory), or the CPU with the reason none qualified."""
    eligible = [(index, gpu, dtype) for index, gpu in enumerate(facts.gpus) if (dtype := gpu_rule(gpu)) is not None]
    if not facts.cuda_available or not eligible:
        why = "no CUDA device" if not facts.gpus else (
            f"no GPU with >= {MIN_MEMORY_GB:g} GB and compute capability >= {MIN_CAPABILITY}"
        )
        return RvcPlacement("cpu", "float32", segment_seconds("float32", None), why)
    index, gpu, dtype = max(eligible, key=lambda item: (_capability(item[1]), _memory_gb(item[1])))
    memory = _memory_gb(gpu)
    reason = f"{gpu.name}: capability {gpu.capability[0]}.{gpu.capability[1]}, {memory:.1f} GB -> {dtype}"
    return RvcPlacement(f"cuda:{index}", dtype, segment_seconds(dtype, memory), reason)


_PRECISION_OF_DTYPE = {dtype: precision for precision, dtype in RVC_DECODER_DTYPES.items()}  # "float16" -> "fp16"


def rvc_precision(setting: str, device: str, facts: TorchFacts) -> PrecisionChoice:
    """RVC_PRECISION for a worker converting on ``device`` ("cpu", "cuda" or "cuda:N", resolved).

    "auto" is fp32 on the CPU and main's dtype for the card on CUDA ("cuda" is card 0, torch's
    default). A card the rule leaves out (DEVICE=cuda named it, so it stays) runs fp32, the dtype
    every card can run. Any other setting is returned as it is: ``rvc.device.check_rvc_precision``
    has already judged it against the device.
    """
    if setting != AUTO_PRECISION:
        if setting not in RVC_DECODER_DTYPES:
            raise ValueError(f"RVC_PRECISION={setting!r}: must be auto or one of {sorted(RVC_DECODER_DTYPES)}")
        return PrecisionChoice(setting, setting)
    kind, _, index = device.partition(":")
    if kind != "cuda":
        return PrecisionChoice(setting, "fp32", "the CPU")
    number = int(index or 0)
    if number >= len(facts.gpus):
        raise ValueError(f"device {device!r}: torch sees {len(facts.gpus)} GPU(s)")
    gpu = facts.gpus[number]
    card = f"{gpu.name}, capability {gpu.capability[0]}.{gpu.capability[1]}"
    dtype = gpu_rule(gpu)
    if dtype is None:
        return PrecisionChoice(setting, "fp32", (
            f"{card}, {_memory_gb(gpu):.1f} GB: outside main's rule (>= {MIN_MEMORY_GB:g} GB and capability >= "
            f"{MIN_CAPABILITY}), kept as DEVICE names it, in fp32"
        ))
    return PrecisionChoice(setting, _PRECISION_OF_DTYPE[dtype], f"main's rule: {card}")
