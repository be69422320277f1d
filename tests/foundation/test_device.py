"""rvc.device: one device decision for Triton and the workers, capability rules, CUDA-fault rules.

The facts of a GPU machine are given (``TorchFacts``); the facts of this machine are read for real
(torch 2.13.0+cpu, no driver), in a child interpreter as the gateway reads them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Literal

import pytest

from rvc.device import (
    CODEC_DTYPE,
    GpuFacts,
    TorchFacts,
    check_llm_dtype,
    check_rvc_precision,
    classify_cuda_error,
    default_half_dtype,
    describe,
    gpu_memory_exceeded,
    kv_cache_tokens,
    probe_torch,
    resolve_device,
    supports_bf16,
    torch_facts,
)
from rvc.errors import ConfigError

T4 = GpuFacts("Tesla T4", (7, 5), 15095)
A100 = GpuFacts("NVIDIA A100-SXM4-40GB", (8, 0), 40536)
CPU_BUILD = TorchFacts("2.13.0+cpu", None, None, False)
CUDA_T4 = TorchFacts("2.13.0+cu126", "12.6", 90501, True, (T4,))
CUDA_A100 = TorchFacts("2.13.0+cu126", "12.6", 90501, True, (A100,))
CUDA_NO_GPU = TorchFacts("2.13.0+cu126", "12.6", 90501, False)


# ------------------------------------------------------------------------------- the device decision
def test_auto_without_a_driver_is_the_cpu_whatever_torch_is() -> None:
    assert resolve_device("auto", driver=False, facts=CPU_BUILD) == "cpu"
    assert resolve_device("auto", driver=False, facts=CUDA_NO_GPU) == "cpu"


def test_auto_with_a_driver_and_a_cuda_build_is_cuda() -> None:
    assert resolve_device("auto", driver=True, facts=CUDA_T4) == "cuda"
    assert resolve_device("cuda", driver=True, facts=CUDA_A100) == "cuda"


def test_driver_with_a_cpu_build_fails_loudly_naming_the_fix() -> None:
    with pytest.raises(ConfigError) as error:
        resolve_device("auto", driver=True, facts=CPU_BUILD)
    message = error.value.message
    assert "CPU-only build" in message and "2.13.0+cpu" in message and "torch.version.cuda is None" in message
    assert "download.pytorch.org/whl/cu126" in message and "DEVICE=cpu" in message
    assert error.value.field == "DEVICE"


def test_cuda_requested_with_a_cpu_build_or_no_visible_gpu_fails() -> None:
    with pytest.raises(ConfigError, match="DEVICE=cuda but torch 2.13.0\\+cpu is a CPU-only build"):
        resolve_device("cuda", driver=False, facts=CPU_BUILD)
    with pytest.raises(ConfigError, match="sees no GPU.*--gpus all.*DEVICE=cpu"):
        resolve_device("auto", driver=True, facts=CUDA_NO_GPU)


def test_cpu_is_always_accepted_and_unknown_values_are_refused() -> None:
    assert resolve_device("cpu", driver=True, facts=CPU_BUILD) == "cpu"
    with pytest.raises(ConfigError, match="DEVICE='gpu'"):
        resolve_device("gpu", driver=True, facts=CUDA_T4)


def test_this_machine_probed_in_a_child_interpreter_matches_in_process() -> None:
    probed = probe_torch()
    assert probed == torch_facts()
    assert probed.cuda_version is None and not probed.cuda_available  # the CPU wheel here
    assert resolve_device("auto", driver=False, facts=probed) == "cpu"
    with pytest.raises(ConfigError, match="CPU-only build"):
        resolve_device("auto", driver=True, facts=probed)


def test_facts_round_trip_through_json() -> None:
    assert TorchFacts.from_json(CUDA_T4.to_json()) == CUDA_T4
    two = TorchFacts("2.13.0+cu126", "12.6", 90501, True, (A100, T4))
    assert two.capability == (7, 5)  # the weakest card decides what every instance may use


def test_module_cli_reports_the_decision_here() -> None:
    result = subprocess.run([sys.executable, "-m", "rvc.device"], capture_output=True, text=True, timeout=120,
                            check=False)
    report = json.loads(result.stdout)
    assert result.returncode == 0 and report["device"] == "cpu" and report["codec_dtype"] == "float32"
    assert report["cuda_version"] is None


def test_describe_reports_the_error_instead_of_a_device() -> None:
    report = describe("auto", driver=True, facts=CPU_BUILD)
    assert "device" not in report and "CPU-only build" in str(report["error"])
    t4 = describe("auto", driver=True, facts=CUDA_T4)
    assert t4["device"] == "cuda" and t4["bf16"] is False and t4["half_dtype"] == "float16"
    assert t4["llm_dtype"] == "float16" and t4["codec_dtype"] == "float32"


# ------------------------------------------------------------------------------- capability rules
@pytest.mark.parametrize(
    ("capability", "bf16", "half"),
    [((7, 0), False, "float16"), ((7, 5), False, "float16"), ((8, 0), True, "bfloat16"),
     ((8, 6), True, "bfloat16"), ((9, 0), True, "bfloat16"), ((12, 0), True, "bfloat16")],
    ids=["V100", "T4", "A100", "A10/3090", "H100", "Blackwell"],
)
def test_bf16_only_from_ampere_and_fp16_below(capability: tuple[int, int], bf16: bool, half: str) -> None:
    assert supports_bf16(capability) is bf16
    assert default_half_dtype(capability) == half


def test_codec_stays_float32() -> None:
    assert CODEC_DTYPE == "float32"


def test_rvc_bf16_is_refused_on_a_t4_with_the_fix() -> None:
    with pytest.raises(ConfigError) as error:
        check_rvc_precision("bf16", "cuda", (7, 5))
    assert "RVC_PRECISION=bf16" in error.value.message and "7.5" in error.value.message
    assert "RVC_PRECISION=fp16" in error.value.message and error.value.field == "RVC_PRECISION"


def test_rvc_precisions_accepted_where_supported() -> None:
    check_rvc_precision("bf16", "cuda", (8, 0))
    check_rvc_precision("bf16", "cpu", None)  # CPUs emulate it (AVX-512 BF16/AMX make it fast)
    check_rvc_precision("fp16", "cuda", (7, 5))
    for device in ("cpu", "cuda"):
        check_rvc_precision("fp32", device, (7, 5) if device == "cuda" else None)
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device"):
        check_rvc_precision("fp16", "cpu", None)
    with pytest.raises(ConfigError, match="must be auto, fp32, bf16 or fp16"):
        check_rvc_precision("int8", "cuda", (8, 0))


@pytest.mark.parametrize(("device", "capability"), [("cpu", None), ("cuda", (6, 1)), ("cuda", (7, 5)), ("cuda", (9, 0))])
def test_rvc_precision_auto_passes_every_launch_check(device: Literal["cpu", "cuda"],
                                                      capability: tuple[int, int] | None) -> None:
    check_rvc_precision("auto", device, capability)  # the worker turns it into a dtype its card runs


def test_decide_device_accepts_rvc_precision_auto() -> None:
    from rvc.device import decide_device

    assert decide_device("cpu", "auto", driver=False) == "cpu"
    assert decide_device("auto", "auto", driver=True, probe=lambda: CUDA_T4) == "cuda"


def test_llm_dtype_rules_name_the_variable() -> None:
    with pytest.raises(ConfigError, match="TRT_DTYPE=bfloat16 needs compute capability >= 8.0"):
        check_llm_dtype("bfloat16", "cuda", (7, 5), "TRT_DTYPE")
    with pytest.raises(ConfigError, match="TRT_DTYPE=float16 needs a CUDA device"):
        check_llm_dtype("float16", "cpu", None, "TRT_DTYPE")
    check_llm_dtype("float16", "cuda", (7, 5), "TRT_DTYPE")
    check_llm_dtype("bfloat16", "cuda", (9, 0), "TRT_DTYPE")


def test_kv_pool_holds_every_row_with_prompt_and_budget() -> None:
    assert kv_cache_tokens(16, 2048, 3000) == 16 * 5048
    assert kv_cache_tokens(1, 2048, 3000) > 2560  # the official pool could not finish one long row
    with pytest.raises(ValueError, match="max_new_tokens"):
        kv_cache_tokens(1, 2048, 0)


# ------------------------------------------------------------------------------- CUDA faults
class OutOfMemoryError(RuntimeError):
    """Same name as torch.OutOfMemoryError (torch.cuda.OutOfMemoryError), which subclasses RuntimeError."""


class ConversionFailed(Exception):
    pass


def wrapped(inner: BaseException) -> ConversionFailed:
    try:
        raise inner
    except BaseException as exc:  # noqa: BLE001 - building the chain a model wrapper would build
        try:
            raise ConversionFailed("conversion failed") from exc
        except ConversionFailed as outer:
            return outer


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), "oom"),
        (RuntimeError("CUDA error: out of memory"), "oom"),
        (RuntimeError("CUDA error: an illegal memory access was encountered"), "sticky"),
        (RuntimeError("CUDA error: device-side assert triggered\nCUDA kernel errors might be ..."), "sticky"),
        (RuntimeError("CUDA error: unspecified launch failure"), "sticky"),
        (RuntimeError("CUDA error: misaligned address"), "sticky"),
        (RuntimeError("Given groups=1, weight of size [16, 1, 3, 3], expected input"), "other"),
        (ValueError("f0_method must be one of rmvpe, pm"), "other"),
        (wrapped(OutOfMemoryError("CUDA out of memory.")), "oom"),
        (wrapped(RuntimeError("CUDA error: an illegal memory access was encountered")), "sticky"),
    ],
    ids=["oom-type", "oom-message", "illegal-address", "device-assert", "launch-failure", "misaligned", "shape",
         "value", "wrapped-oom", "wrapped-sticky"],
)
def test_cuda_errors_are_classified(exc: BaseException, kind: str) -> None:
    assert classify_cuda_error(exc) == kind


def test_a_cycle_in_the_exception_chain_terminates() -> None:
    first, second = RuntimeError("a"), RuntimeError("b")
    first.__context__, second.__context__ = second, first
    assert classify_cuda_error(first) == "other"


def test_gpu_memory_threshold() -> None:
    assert gpu_memory_exceeded(5000, 4096) and not gpu_memory_exceeded(4000, 4096)
    assert not gpu_memory_exceeded(10**6, 0)  # 0 = never recycle for GPU memory
    with pytest.raises(ValueError):
        gpu_memory_exceeded(-1, 10)


# ------------------------------------------------------------------------------- for the lead to wire in
def test_fp32_turns_tf32_off_and_half_precisions_leave_it_on() -> None:
    import torch

    from rvc.device import apply_precision_flags

    before = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    try:
        apply_precision_flags("fp32")
        assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
        apply_precision_flags("fp16")
        assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


def test_instances_spread_over_gpus_only_when_there_are_several() -> None:
    from rvc.device import instance_group

    assert instance_group("cpu", 0, 2) == "instance_group [ { kind: KIND_CPU count: 2 } ]"
    assert instance_group("cuda", 1, 1) == "instance_group [ { kind: KIND_CPU count: 1 } ]"
    assert instance_group("cuda", 4, 1) == "instance_group [ { kind: KIND_GPU count: 1 gpus: [ 0, 1, 2, 3 ] } ]"
    with pytest.raises(ValueError):
        instance_group("cuda", 2, 0)


def test_instances_spread_over_every_gpu_torch_sees_and_none_on_the_cpu() -> None:
    from rvc.device import instance_gpu_count

    two = TorchFacts("2.13.0+cu126", "12.6", 90501, True, (A100, A100))
    assert instance_gpu_count("cuda", two) == 2 and instance_gpu_count("cuda", CUDA_T4) == 1
    assert instance_gpu_count("cpu", two) == 0 and instance_gpu_count("cpu", CPU_BUILD) == 0


def test_placements_keep_the_codec_float32() -> None:
    from rvc.device import placements

    parts = {placement.part: placement for placement in placements("cuda", "fp16", "float16", "python")}
    assert parts["tts.vocoder"].dtype == parts["tts.audio_tokenizer"].dtype == "float32"
    assert parts["tts.llm (python)"].dtype == "float16" and parts["rvc.decoder"].dtype == "float16"
    assert parts["rvc.hubert"].dtype == parts["rvc.rmvpe"].dtype == "float16"  # fp16 is the official half mode
    bf16 = {placement.part: placement.dtype for placement in placements("cpu", "bf16", "float32", "python")}
    assert (bf16["rvc.decoder"], bf16["rvc.hubert"], bf16["rvc.rmvpe"]) == ("bfloat16", "float32", "float32")
    assert {placement.device for placement in parts.values()} == {"cuda"}


def test_decide_device_asks_torch_only_when_the_answer_can_matter() -> None:
    from rvc.device import decide_device

    asked: list[str] = []

    def facts_of(facts: TorchFacts):  # type: ignore[no-untyped-def]
        def probe() -> TorchFacts:
            asked.append(facts.torch_version)
            return facts
        return probe

    assert decide_device("cpu", "fp32", driver=True, probe=facts_of(CUDA_T4)) == "cpu"
    assert decide_device("auto", "bf16", driver=False, probe=facts_of(CUDA_T4)) == "cpu"
    assert asked == []  # DEVICE=cpu, or auto without a driver, is the CPU whatever torch is
    assert decide_device("auto", "fp16", driver=True, probe=facts_of(CUDA_T4)) == "cuda"
    with pytest.raises(ConfigError, match="CPU-only build"):
        decide_device("auto", "fp32", driver=True, probe=facts_of(CPU_BUILD))
    with pytest.raises(ConfigError, match="RVC_PRECISION=bf16 needs compute capability"):
        decide_device("auto", "bf16", driver=True, probe=facts_of(CUDA_T4))
    with pytest.raises(ConfigError, match="RVC_PRECISION=fp16 needs a CUDA device"):
        decide_device("auto", "fp16", driver=False)
    with pytest.raises(ConfigError, match="must be auto, cpu or cuda"):
        decide_device("gpu", "fp32", driver=False)


def test_decide_device_here_probes_the_real_torch_for_cuda() -> None:
    from rvc.device import decide_device

    # this machine: torch 2.13.0+cpu, so DEVICE=cuda is refused naming the fix, after a real probe
    with pytest.raises(ConfigError, match="CPU-only build|sees no GPU"):
        decide_device("cuda", "fp32")


def test_resolve_llm_dtype_maps_the_sparktts_rule_to_config_errors() -> None:
    from rvc.device import resolve_llm_dtype

    assert resolve_llm_dtype("auto", "cuda", (7, 5), "LLM_DTYPE") == "float16"
    assert resolve_llm_dtype("auto", "cuda", (8, 6), "LLM_DTYPE") == "bfloat16"
    with pytest.raises(ConfigError) as error:
        resolve_llm_dtype("bfloat16", "cuda", (7, 5), "LLM_DTYPE", "Tesla T4")
    assert error.value.field == "LLM_DTYPE" and "Tesla T4" in error.value.message
