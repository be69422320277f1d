"""The LLM's dtype rule, the codec's float32 and TF32, as pure functions of given capabilities, and
as the Triton stubs apply them (``sparktts.serving.placement``, on the CPU here)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
import torch

from sparktts.precision import CODEC_DTYPE, allow_tf32, apply_tf32_rule, llm_dtype, logits_dtype
from sparktts.serving import codec_placement, llm_placement
from tests.conftest import REPO_ROOT

CARDS = {"V100": (7, 0), "T4": (7, 5), "A100": (8, 0), "L4": (8, 9), "H100": (9, 0)}


@pytest.fixture()
def tf32_switches() -> Iterator[None]:
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


@pytest.mark.parametrize(("card", "expected"), [("V100", "float16"), ("T4", "float16"), ("A100", "bfloat16"),
                                                ("L4", "bfloat16"), ("H100", "bfloat16")])
def test_auto_is_bfloat16_from_ampere_and_float16_below(card: str, expected: str) -> None:
    assert llm_dtype("auto", "cuda", CARDS[card]) == expected
    assert llm_dtype("auto", "cuda:1", CARDS[card]) == expected


def test_auto_is_float32_on_the_cpu() -> None:
    assert llm_dtype("auto", "cpu", None) == "float32"


def test_bfloat16_below_ampere_is_refused_naming_the_card_and_the_fix() -> None:
    with pytest.raises(ValueError) as error:
        llm_dtype("bfloat16", "cuda", CARDS["T4"], gpu_name="Tesla T4")
    message = str(error.value)
    assert "Tesla T4 (compute capability 7.5)" in message and "LLM_DTYPE=float16" in message
    with pytest.raises(ValueError, match="TRT_DTYPE=bfloat16 needs compute capability >= 8.0"):
        llm_dtype("bfloat16", "cuda", CARDS["V100"], variable="TRT_DTYPE")


def test_float16_on_the_cpu_is_refused() -> None:
    with pytest.raises(ValueError, match="LLM_DTYPE=float16 needs a CUDA device"):
        llm_dtype("float16", "cpu", None)


@pytest.mark.parametrize(("requested", "device", "capability"), [
    ("float32", "cpu", None), ("bfloat16", "cpu", None), ("float32", "cuda", (7, 5)), ("float16", "cuda", (7, 5)),
    ("float16", "cuda", (9, 0)), ("bfloat16", "cuda", (8, 0)),
])
def test_explicit_dtypes_the_device_runs_are_kept(requested: str, device: str,
                                                  capability: tuple[int, int] | None) -> None:
    assert llm_dtype(requested, device, capability) == requested


def test_unknown_dtypes_and_an_unknown_card_are_refused() -> None:
    with pytest.raises(ValueError, match="must be auto, float32, bfloat16 or float16"):
        llm_dtype("int8", "cuda", (9, 0))
    with pytest.raises(ValueError, match="compute capability"):
        llm_dtype("auto", "cuda", None)


def test_only_float16_moves_the_head_to_float32_and_only_float32_turns_tf32_off() -> None:
    assert [logits_dtype(d) for d in ("float32", "bfloat16", "float16")] == ["float32", "bfloat16", "float32"]
    assert [allow_tf32(d) for d in ("float32", "bfloat16", "float16")] == [False, True, True]
    assert CODEC_DTYPE == "float32"


def test_float32_turns_tf32_off_and_the_cpu_never_turns_it_on(tf32_switches: None) -> None:
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    apply_tf32_rule("float32", "cpu")
    assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    apply_tf32_rule("bfloat16", "cpu")  # the matmul switch would lower float32_matmul_precision for the CPU too
    assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    apply_tf32_rule("float16", "cuda:0")
    assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32


def test_stub_placements_keep_the_codec_float32_and_resolve_the_llm(tf32_switches: None) -> None:
    torch.backends.cudnn.allow_tf32 = True
    assert codec_placement({"device": "cpu", "dtype": "float32"}) == ("cpu", torch.float32)
    assert not torch.backends.cudnn.allow_tf32  # "fp32 (exact)" is exact on Ampere too
    with pytest.raises(ValueError, match="BiCodec and wav2vec2 run in float32"):
        codec_placement({"device": "cpu", "dtype": "bfloat16"})
    assert llm_placement({"device": "cpu", "dtype": "auto"}) == ("cpu", torch.float32)
    assert llm_placement({"device": "cpu"}) == ("cpu", torch.float32)
    assert llm_placement({"device": "cpu", "dtype": "bfloat16"}) == ("cpu", torch.bfloat16)
    with pytest.raises(ValueError, match="LLM_DTYPE=float16 needs a CUDA device"):
        llm_placement({"device": "cpu", "dtype": "float16"})
    with pytest.raises(ValueError, match="cpu, cuda or cuda:N"):
        llm_placement({"device": "gpu1"})


def test_sparktts_imports_nothing_from_rvc_and_the_rule_needs_no_torch() -> None:
    offenders = [str(path.relative_to(REPO_ROOT)) for path in (REPO_ROOT / "sparktts").rglob("*.py")
                 if any(line.lstrip().startswith(("import rvc", "from rvc")) for line in path.read_text().splitlines())]
    assert offenders == []
    probe = "import sys, rvc.device, sparktts.precision; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
                          cwd=REPO_ROOT / "tests", check=True)
    assert done.stdout.strip() == "False"  # the gateway, which uses rvc.device, still never imports torch


# ------------------------------------------------------------------------------- float16 logits
@pytest.fixture()
def loud_fp16_lm(spark_tiny):  # type: ignore[no-untyped-def]
    """The tiny LLM in float16 (torch runs it on the CPU) with its final norm scaled so that hidden
    states reach ~1e4: finite in float16, but a head row's scores then pass 65504."""
    from sparktts.llm import SparkLM

    lm = SparkLM.from_pretrained(spark_tiny / "model" / "LLM", dtype=torch.float16)
    with torch.no_grad():
        lm.model.model.norm.weight.mul_(4000.0)
    return lm


def test_projection_dtype_follows_the_rule() -> None:
    from sparktts.llm import projection_dtype

    assert projection_dtype(torch.float16) == torch.float32
    assert projection_dtype(torch.bfloat16) == torch.bfloat16
    assert projection_dtype(torch.float32) == torch.float32


@pytest.mark.parametrize("restrict", [False, True])
def test_a_float16_model_scores_its_head_in_float32(loud_fp16_lm, restrict: bool) -> None:  # type: ignore[no-untyped-def]
    lm = loud_fp16_lm
    weight = lm.model.get_output_embeddings().weight.detach()
    grammar = lm.grammar_ids()
    row = int(grammar[weight[grammar].float().abs().sum(1).argmax()])  # the grammar row scoring highest
    hidden = (8000.0 * torch.sign(weight[row])).reshape(1, -1).to(torch.float16)
    with torch.inference_mode():
        assert torch.isinf(lm.model.get_output_embeddings()(hidden)).any()  # the float16 head overflows here
        logits = lm._logits(hidden, restrict)
    assert logits.dtype == torch.float32 and not torch.isnan(logits).any()
    expected = hidden.float() @ weight.float().T
    rows = grammar if restrict else torch.arange(lm.vocab_rows)
    assert torch.isfinite(logits[0, rows]).all()
    torch.testing.assert_close(logits[0, rows], expected[0, rows], rtol=1e-5, atol=1e-2)


def test_a_float16_model_samples_where_float16_scores_would_be_inf(loud_fp16_lm) -> None:  # type: ignore[no-untyped-def]
    from sparktts.llm import GenerationParams

    lm = loud_fp16_lm
    prompt = "<|task_tts|><|start_content|>hello<|end_content|><|start_global_token|>"
    with torch.inference_mode():
        last = lm.model.model(lm.encode(prompt)).last_hidden_state[:, -1, :]
        assert torch.isinf(lm.model.get_output_embeddings()(last)).any()  # what multinomial would have got
    ids = lm.generate(prompt, GenerationParams(max_new_tokens=12, seed=3, do_sample=True))
    assert len(ids) >= 1 and all(0 <= token < lm.vocab_rows for token in ids)
