"""bench/gpu_check.py on a machine without a GPU: the CPU-checkable steps pass, every GPU step says
it needs one, and the official L20 figures it prints beside ours are the published ones."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from rvc.device import driver_present

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

# isort: split
from gpu_precision import float16_head_on_device, stub_precision  # noqa: E402
from gpu_tunings import decoder_layouts, disk_use, sampling_syncs  # noqa: E402
from official_runtime import OFFICIAL_L20, comparison_table, official_summary  # noqa: E402


@pytest.mark.skipif(driver_present(), reason="describes a machine without an NVIDIA driver")
def test_cpu_steps_pass_and_gpu_steps_say_they_need_a_gpu(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_check.py"), "--budget-s", "60",
                           "--scratch", str(tmp_path / "scratch")], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = done.stdout[done.stdout.index("=== summary"):]
    assert re.search(r"\[\s*ok\] 1 torch and driver facts: device cpu.*; disk: venv ", summary)
    assert re.search(r"\[\s*ok\] 2 convolution under the launcher's environment: .*no system folder prepended", summary)
    for step in ("3 Triton on CUDA", "4 RVC pool on CUDA", "5 CUDA OOM", "6 /synthesize", "7 tokens/s, RTF",
                 "8 LLM_BACKEND=tensorrtllm"):
        assert re.search(rf"\[\s*SKIP\] {re.escape(step)}.*needs a CUDA device", summary), step
    assert "not checked here (need a CUDA GPU)" in summary and "FAIL" not in summary


def test_the_official_rows_are_the_published_table() -> None:
    """OFFICIAL_L20 against the table quoted in ../shared/reference/spark_tts.md."""
    reference = (ROOT.parent / "shared" / "reference" / "spark_tts.md").read_text()
    published = set()
    for mode, concurrency, latency, first, rtf in re.findall(
        r"^\| (Offline|Streaming) \|[^|]*\| (\d) +\| ([\d.]+) ms \|([^|]*)\|\s*([\d.]+)\s*\|$", reference, re.M
    ):
        first_ms = float(first.strip().removesuffix("ms")) if first.strip() != "-" else None
        published.add((mode.lower(), int(concurrency), float(latency), first_ms, float(rtf)))
    ours = {(row.mode, row.concurrency, row.latency_mean_ms, row.first_chunk_p50_ms, row.rtf) for row in OFFICIAL_L20}
    assert len(published) == 6 and ours == published
    assert "0.1362 @1" in official_summary() and "210.42 ms @1" in official_summary()


def test_measured_rows_print_beside_the_official_ones() -> None:
    measured = [
        {"mode": "offline", "concurrency": 1, "tokens_per_s": 812.4, "rtf": 0.0616, "first_chunk_p50_ms": 369.0,
         "latency_mean_ms": 369.0},
        {"mode": "streaming", "concurrency": 4, "tokens_per_s": 1500.0, "rtf": 0.0333, "first_chunk_p50_ms": 95.2,
         "latency_mean_ms": 700.0},
        {"mode": "streaming", "concurrency": 8, "tokens_per_s": 1.0, "rtf": 1.0, "first_chunk_p50_ms": 1.0,
         "latency_mean_ms": 1.0},
    ]
    rows = comparison_table(measured).splitlines()
    assert rows[2] == "| offline | 1 | 812.4 | 0.0616 | - | 369 ms | 0.1362 | - | 876.24 ms |"
    assert rows[3] == "| streaming | 4 | 1500.0 | 0.0333 | 95 ms | 700 ms | 0.0824 | 1017.70 ms | 1793.86 ms |"
    assert rows[4].endswith("| - | - | - |")  # no published row at concurrency 8

_LOG = """I1203 inputs.py:65] "sparktts.serving.placement: LLM on {device} (Tesla T4) in {dtype} (TF32 {tf32})"
I1203 inputs.py:65] "sparktts.serving.codec: BiCodec decoder from /m/Spark-TTS-0.5B on {device} (torch.{codec})"
"""


def test_stub_precision_reads_what_each_stub_chose_against_the_rule() -> None:
    line = stub_precision(_LOG.format(device="cuda", dtype="float16", tf32="on", codec="float32"), "cuda", (7, 5))
    assert "1 LLM instances in float16 (TF32 on), 1 BiCodec instances float32" == line
    assert "bfloat16" in stub_precision(_LOG.format(device="cuda", dtype="bfloat16", tf32="on", codec="float32"),
                                        "cuda", (9, 0))
    for wrong in (dict(dtype="float32", tf32="on", codec="float32"), dict(dtype="float16", tf32="on", codec="float16"),
                  dict(dtype="float16", tf32="off", codec="float32")):
        with pytest.raises(RuntimeError, match="otherwise than the rule"):
            stub_precision(_LOG.format(device="cuda", **wrong), "cuda", (7, 5))
    with pytest.raises(RuntimeError, match="0 LLM"):
        stub_precision("nothing loaded", "cpu", None)


def test_the_float16_head_check_runs_on_the_cpu(spark_tiny: Path) -> None:
    line = float16_head_on_device(spark_tiny / "model", "cpu")
    assert "scores inf through a float16 head, none through ours" in line


def test_the_gpu_tunings_measure_on_the_cpu(tmp_path: Path) -> None:
    """Step 4's decoder layouts (which must agree) and step 3's sampling timings, small, on the CPU;
    step 1's disk use names every part."""
    layouts = decoder_layouts("cpu", 0.1, half=False, repeats=1)
    assert "planar, 4 s windows (served)" in layouts and "1-D, one pass (reference)" in layouts
    assert "max |d|" in layouts
    sampling = sampling_syncs("cpu", vocab_rows=2000, repeats=1)
    assert "sampling 1 row(s) x 2000 on cpu" in sampling and "sampling 4 row(s)" in sampling
    assert "host copy" not in sampling  # on the CPU both paths are the same work: nothing to compare
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "weights.bin").write_bytes(b"0" * 4096)
    disk = disk_use({"models": tmp_path / "models", "gone": tmp_path / "nothing"})
    assert re.search(r"models \d", disk) and "gone absent" in disk and "GiB free" in disk
