"""The official main's RVC GPU rule (rvc.gpu_rule): eligibility, dtype, best card, segment lengths."""

from __future__ import annotations

import pytest

from rvc.device import GpuFacts, TorchFacts
from rvc.gpu_rule import SegmentSeconds, gpu_rule, rvc_placement, rvc_precision, segment_seconds


def facts(*gpus: GpuFacts) -> TorchFacts:
    return TorchFacts("2.13.0+cu126", "12.6", 90000, bool(gpus), gpus)


@pytest.mark.parametrize(
    ("gpu", "dtype"),
    [
        (GpuFacts("NVIDIA H200", (9, 0), 143771), "float16"),
        (GpuFacts("Tesla T4", (7, 5), 15360), "float16"),
        (GpuFacts("NVIDIA GeForce GTX 1660 SUPER", (7, 5), 6144), "float32"),  # a 16xx Turing card
        (GpuFacts("NVIDIA GeForce GTX 1080", (6, 1), 8192), "float32"),  # Pascal consumer
        (GpuFacts("Tesla P100", (6, 0), 16384), None),  # 5.3 <= 6.0 < 6.1: main leaves it out
        (GpuFacts("Tesla M40", (5, 2), 12288), None),  # below 5.3
        (GpuFacts("NVIDIA GeForce GTX 1050", (6, 1), 3400), None),  # 3.3 + 0.4 GB < 4
        (GpuFacts("NVIDIA GeForce GTX 1050 Ti", (6, 1), 3700), "float32"),  # 3.6 + 0.4 GB counts as 4
    ],
)
def test_each_card_gets_mains_dtype(gpu: GpuFacts, dtype: str | None) -> None:
    assert gpu_rule(gpu) == dtype


def test_the_best_card_by_capability_then_memory_converts() -> None:
    placement = rvc_placement(facts(GpuFacts("Tesla T4", (7, 5), 15360), GpuFacts("A10", (8, 6), 23028),
                                    GpuFacts("A10 big", (8, 6), 46000), GpuFacts("M40", (5, 2), 24576)))  # fmt: skip
    assert (placement.device, placement.dtype) == ("cuda:2", "float16")
    assert placement.segments == SegmentSeconds(3, 10, 60, 65)


def test_no_eligible_card_means_the_cpu_with_the_reason() -> None:
    placement = rvc_placement(facts(GpuFacts("M40", (5, 2), 24576)))
    assert (placement.device, placement.dtype) == ("cpu", "float32")
    assert "5.3" in placement.reason and placement.segments == SegmentSeconds(1, 6, 38, 41)
    assert rvc_placement(TorchFacts("2.13.0+cpu", None, None, False)).reason == "no CUDA device"


def test_segment_lengths_follow_the_dtype_and_small_cards() -> None:
    assert segment_seconds("float32", None) == SegmentSeconds(1, 6, 38, 41)
    assert segment_seconds("float16", 16.0) == SegmentSeconds(3, 10, 60, 65)
    assert segment_seconds("float16", 4.3) == SegmentSeconds(1, 5, 30, 32)  # int(4.3) <= 4, as main
    assert rvc_placement(facts(GpuFacts("GTX 1050 Ti", (6, 1), 3700))).segments == SegmentSeconds(1, 5, 30, 32)


# --- RVC_PRECISION=auto: the rule's dtype for the worker's card ------------------------------------

A10 = GpuFacts("NVIDIA A10", (8, 6), 23028)
L4 = GpuFacts("NVIDIA L4", (8, 9), 23034)
GTX_1080 = GpuFacts("NVIDIA GeForce GTX 1080", (6, 1), 8192)
GTX_1660 = GpuFacts("NVIDIA GeForce GTX 1660 SUPER", (7, 5), 6144)
M40 = GpuFacts("Tesla M40", (5, 2), 12288)


def test_auto_is_fp32_on_the_cpu_whatever_the_cards() -> None:
    for torch_facts in (TorchFacts("2.13.0+cpu", None, None, False), facts(A10)):
        choice = rvc_precision("auto", "cpu", torch_facts)
        assert (choice.precision, choice.source) == ("fp32", "auto -> fp32 (the CPU)")


@pytest.mark.parametrize(
    ("gpu", "precision"),
    [(A10, "fp16"), (L4, "fp16"), (GTX_1080, "fp32"), (GTX_1660, "fp32")],
)
def test_auto_on_cuda_takes_mains_dtype_for_the_card(gpu: GpuFacts, precision: str) -> None:
    choice = rvc_precision("auto", "cuda", facts(gpu))
    assert choice.precision == precision
    capability = f"{gpu.capability[0]}.{gpu.capability[1]}"
    assert choice.source == f"auto -> {precision} (main's rule: {gpu.name}, capability {capability})"


def test_auto_follows_the_card_the_worker_converts_on() -> None:
    several = facts(GTX_1080, L4)
    assert rvc_precision("auto", "cuda:1", several).precision == "fp16"
    assert rvc_precision("auto", "cuda:0", several).precision == "fp32"
    assert rvc_precision("auto", "cuda", several).precision == "fp32"  # torch's "cuda" is card 0
    placement = rvc_placement(several)  # DEVICE=auto: the rule picks the card, then its dtype
    assert (placement.device, rvc_precision("auto", placement.device, several).precision) == ("cuda:1", "fp16")
    with pytest.raises(ValueError, match="sees 2 GPU"):
        rvc_precision("auto", "cuda:2", several)


def test_auto_on_a_card_outside_the_rule_that_device_names_is_fp32_with_the_reason() -> None:
    choice = rvc_precision("auto", "cuda:0", facts(M40))
    assert choice.precision == "fp32"
    assert "Tesla M40, capability 5.2" in choice.source and "outside main's rule" in choice.source


def test_an_explicit_precision_wins_over_the_rule() -> None:
    for setting in ("fp32", "bf16", "fp16"):
        choice = rvc_precision(setting, "cuda", facts(A10))
        assert (choice.precision, choice.source, choice.reason) == (setting, setting, "")
    assert rvc_precision("fp32", "cuda", facts(L4)).precision == "fp32"
    with pytest.raises(ValueError, match="int8"):
        rvc_precision("int8", "cpu", facts())
