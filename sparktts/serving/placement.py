"""Where a Triton model's torch parts run, and in which dtype, from its config.pbtxt parameters.

``rvc.grpc.model_repository`` writes a ``device`` and a ``dtype`` parameter into every model's
config: the codec models (``audio_tokenizer``, ``vocoder``) always float32, ``spark_tts`` the
LLM's dtype (LLM_DTYPE, resolved by the service, or "auto" when the repository was prepared by
hand). The stub checks them against the card it landed on, because only it knows that card (a
KIND_GPU instance gets its own), and sets TF32 for its process (``sparktts.precision`` has the rules
and says why).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import torch

from sparktts.precision import AUTO, CODEC_DTYPE, Capability, apply_tf32_rule, llm_dtype

__all__ = ["TORCH_DTYPES", "codec_placement", "instance_parameters", "llm_placement", "torch_device"]

logger = logging.getLogger(__name__)

TORCH_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def instance_parameters(parameters: Mapping[str, str], args: Mapping[str, object]) -> dict[str, str]:
    """The model's parameters with ``device`` pinned to this instance's GPU ("cuda:N") when Triton
    placed the instance with KIND_GPU (several GPUs: ``rvc.device.instance_group``), so instances
    spread over the cards instead of all loading on GPU 0. KIND_CPU (one GPU, or the CPU) keeps
    the parameter as written, the official runtime's layout.
    """
    placed = dict(parameters)
    if placed.get("device") == "cuda" and str(args.get("model_instance_kind", "")).upper() == "GPU":
        placed["device"] = f"cuda:{int(str(args['model_instance_device_id']))}"
    return placed


def torch_device(parameters: Mapping[str, str]) -> str:
    """The ``device`` model parameter ("cpu", "cuda" or "cuda:N"); ValueError if torch cannot use it."""
    device = parameters.get("device", "cpu") or "cpu"
    if device not in ("cpu", "cuda") and not (device.startswith("cuda:") and device[5:].isdigit()):
        raise ValueError(f"model parameter device must be cpu, cuda or cuda:N, got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("model parameter device is cuda but torch sees no CUDA device")
    return device


def _card(device: str) -> tuple[Capability | None, str]:
    """(compute capability, name) of the card ``device`` names; (None, "") for the CPU."""
    if not device.startswith("cuda"):
        return None, ""
    major, minor = torch.cuda.get_device_capability(device)
    return (int(major), int(minor)), torch.cuda.get_device_name(device)


def codec_placement(parameters: Mapping[str, str]) -> tuple[str, torch.dtype]:
    """(device, float32) for BiCodec and wav2vec2; a half ``dtype`` parameter is refused (ValueError):
    the codec stays float32, as the official code keeps it, whatever the LLM runs in. TF32 goes off."""
    device = torch_device(parameters)
    name = parameters.get("dtype", CODEC_DTYPE) or CODEC_DTYPE
    if name != CODEC_DTYPE:
        raise ValueError(f"model parameter dtype={name!r}: BiCodec and wav2vec2 run in {CODEC_DTYPE}, as the official "
                         "code keeps them; only spark_tts's LLM takes a half dtype (LLM_DTYPE)")
    apply_tf32_rule(CODEC_DTYPE, device)
    return device, TORCH_DTYPES[CODEC_DTYPE]


def llm_placement(parameters: Mapping[str, str]) -> tuple[str, torch.dtype]:
    """(device, dtype) for the python-backend LLM: the ``dtype`` parameter ("auto" when absent)
    resolved for this instance's card by ``sparktts.precision.llm_dtype`` (ValueError naming
    LLM_DTYPE when the card cannot run it), and TF32 set to match."""
    device = torch_device(parameters)
    capability, name = _card(device)
    dtype = llm_dtype(parameters.get("dtype", AUTO) or AUTO, device, capability, gpu_name=name, variable="LLM_DTYPE")
    apply_tf32_rule(dtype, device)
    logger.info("LLM on %s%s in %s (TF32 %s)", device, f" ({name})" if name else "", dtype,
                "on" if torch.backends.cuda.matmul.allow_tf32 else "off")
    return device, TORCH_DTYPES[dtype]
