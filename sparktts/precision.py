"""Which dtype each Spark-TTS part runs in: the LLM's rule, the codec's fixed float32, TF32.

Pure functions of names and a compute capability (no torch import), so that the Triton stubs
(``sparktts.serving.placement``), the service's start checks (``rvc.device``) and the tests share
one rule, and the gateway, which never imports torch, can use it too.

* The LLM: "auto" is float32 on the CPU (the official precision, and fp16 has no fast CPU path),
  bfloat16 from compute capability 8.0 (Ampere), float16 below (Turing, e.g. Colab's T4, and Volta
  have no bf16 units). An explicit bfloat16 on a card below 8.0 is refused, not emulated, and
  float16 on the CPU is refused: both would run, slowly or wrongly, without saying so.
* BiCodec, its audio tokenizer, vocoder and wav2vec2 stay float32 whatever the LLM takes, as the
  official code keeps them: only the LLM is cast.
* float32 means float32: Ampere and newer run float32 convolutions (and, if allowed, matmuls) as
  TF32, a 10-bit mantissa, so "fp32 (exact)" turns TF32 off (``apply_tf32_rule``).
* float16 logits: the LLM's head is projected in float32 for a float16 model (``logits_dtype``);
  a float16 score above 65504 becomes inf, and inf - inf in softmax makes ``multinomial`` fail.
"""

from __future__ import annotations

from typing import Literal

__all__ = [
    "AUTO",
    "BF16_CAPABILITY",
    "CODEC_DTYPE",
    "LLM_DTYPES",
    "Capability",
    "allow_tf32",
    "apply_tf32_rule",
    "llm_dtype",
    "logits_dtype",
    "supports_bf16",
]

Capability = tuple[int, int]
LLMDtype = Literal["float32", "bfloat16", "float16"]

AUTO = "auto"
LLM_DTYPES: tuple[LLMDtype, ...] = ("float32", "bfloat16", "float16")
CODEC_DTYPE = "float32"  # BiCodec and wav2vec2, whatever the LLM's dtype (the official code's choice)
BF16_CAPABILITY: Capability = (8, 0)


def supports_bf16(capability: Capability | None) -> bool:
    """bf16 arithmetic needs compute capability 8.0 or newer (Ampere); None means the CPU (emulated, allowed)."""
    return capability is None or tuple(capability) >= BF16_CAPABILITY


def _card(capability: Capability, gpu_name: str) -> str:
    return f"{gpu_name or 'this GPU'} (compute capability {capability[0]}.{capability[1]})"


def llm_dtype(
    requested: str, device: str, capability: Capability | None, *, gpu_name: str = "", variable: str = "LLM_DTYPE"
) -> LLMDtype:
    """The LLM's dtype for ``requested`` ("auto", float32, bfloat16 or float16) on ``device``.

    device: "cpu", "cuda" or "cuda:N"; capability: the card's (major, minor), None on the CPU or where
    the card is not known (an explicit dtype then passes unchecked, as for an engine built elsewhere).
    ``variable`` names the setting in the ValueError, so that the message says what to set.
    """
    if requested != AUTO and requested not in LLM_DTYPES:
        raise ValueError(f"{variable}={requested!r}: must be auto, float32, bfloat16 or float16")
    on_cuda = device.startswith("cuda")
    if requested == AUTO:
        if not on_cuda:
            return "float32"
        if capability is None:
            raise ValueError(f"{variable}=auto on {device} needs the card's compute capability; name a dtype")
        return "bfloat16" if supports_bf16(capability) else "float16"
    if requested == "float16" and not on_cuda:
        raise ValueError(f"{variable}=float16 needs a CUDA device: set {variable}=float32 (or bfloat16) on the CPU")
    if requested == "bfloat16" and on_cuda and capability is not None and not supports_bf16(capability):
        raise ValueError(
            f"{variable}=bfloat16 needs compute capability >= 8.0 (Ampere) and {_card(capability, gpu_name)} has "
            f"no bf16: set {variable}=float16 (or auto, or float32)"
        )
    return requested  # type: ignore[return-value]  # one of LLM_DTYPES, checked above


def logits_dtype(dtype: str) -> LLMDtype:
    """The dtype the LLM head projects in: float32 for a float16 model (fp16 scores overflow to inf
    above 65504), the model's own otherwise (bfloat16 has float32's range)."""
    if dtype not in LLM_DTYPES:
        raise ValueError(f"dtype must be one of {LLM_DTYPES}, got {dtype!r}")
    return "float32" if dtype == "float16" else dtype


def allow_tf32(dtype: str) -> bool:
    """Whether TF32 may stand in for float32 math in a process that runs ``dtype`` models: never for
    float32, which is asked for to be exact; the half types lose more than TF32 does anyway."""
    return dtype != "float32"


def apply_tf32_rule(dtype: str, device: str) -> None:
    """Set torch's TF32 switches (cuBLAS matmul, cuDNN convolution) for this process from ``allow_tf32``.

    Call once per process before the first CUDA op (a Triton stub holds one model, a worker one
    precision). Turning TF32 off is done everywhere; turning it on only for a CUDA device, because
    the matmul switch also lowers ``float32_matmul_precision``, which CPU backends may read.
    """
    import torch

    allowed = allow_tf32(dtype)
    if allowed and not device.startswith("cuda"):
        return
    torch.backends.cuda.matmul.allow_tf32 = allowed
    torch.backends.cudnn.allow_tf32 = allowed
