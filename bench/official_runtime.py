"""The official Spark-TTS Triton runtime's published figures, and our measurements printed beside them.

Quoted from ``runtime/triton_trtllm/README.md`` of SparkAudio/Spark-TTS (``../shared/reference/
spark_tts.md``, "Benchmark tables"): one L20 GPU, the LLM as a TensorRT-LLM bfloat16 engine, 26
prompt/target pairs of the seed_tts set, 169 s of audio in all. RTF = wall time of the run / seconds
synthesised; first chunk = time to the first streamed response (P50). Declared once here for
``bench_triton.py`` and ``gpu_check.py``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["OFFICIAL_L20", "OFFICIAL_SOURCE", "OfficialRow", "comparison_table", "official_summary"]

OFFICIAL_SOURCE = "official runtime (Spark-TTS-0.5B, TensorRT-LLM bfloat16, one L20, 26 prompts / 169 s of audio)"


@dataclass(frozen=True)
class OfficialRow:
    mode: str  # "offline" or "streaming"
    concurrency: int
    latency_mean_ms: float
    first_chunk_p50_ms: float | None  # streaming only
    rtf: float


OFFICIAL_L20 = (
    OfficialRow("offline", 1, 876.24, None, 0.1362),
    OfficialRow("offline", 2, 920.97, None, 0.0737),
    OfficialRow("offline", 4, 1611.51, None, 0.0704),
    OfficialRow("streaming", 1, 913.28, 210.42, 0.1501),
    OfficialRow("streaming", 2, 1009.23, 226.08, 0.0862),
    OfficialRow("streaming", 4, 1793.86, 1017.70, 0.0824),
)


def official_summary() -> str:
    """One line: the offline RTF and the streaming first chunk at each concurrency."""
    offline = ", ".join(f"{row.rtf:.4f} @{row.concurrency}" for row in OFFICIAL_L20 if row.mode == "offline")
    first = ", ".join(f"{row.first_chunk_p50_ms:.2f} ms @{row.concurrency}" for row in OFFICIAL_L20
                      if row.mode == "streaming")
    return f"{OFFICIAL_SOURCE}: RTF {offline} offline; first chunk {first} streaming"


def _number(value: object, fmt: str, suffix: str = "") -> str:
    return "-" if value is None else format(float(value), fmt) + suffix  # type: ignore[arg-type]


def comparison_table(measured: Sequence[Mapping[str, object]]) -> str:
    """Markdown rows of ``bench_triton.py --json`` results (keys ``mode``, ``concurrency``,
    ``tokens_per_s``, ``rtf``, ``first_chunk_p50_ms``, ``latency_mean_ms``), each beside the
    official row of the same mode and concurrency ("-" where it published none)."""
    official = {(row.mode, row.concurrency): row for row in OFFICIAL_L20}
    lines = ["| mode | concurrency | tokens/s | RTF | first chunk p50 | mean latency | official RTF "
             "| official first chunk p50 | official mean latency |", "|---|---|---|---|---|---|---|---|---|"]
    for row in measured:
        mode, concurrency = str(row["mode"]), int(row["concurrency"])  # type: ignore[call-overload]
        theirs = official.get((mode, concurrency))
        first = row["first_chunk_p50_ms"] if mode == "streaming" else None  # offline: the whole answer
        lines.append(" | ".join([
            f"| {mode}", str(concurrency), _number(row["tokens_per_s"], ".1f"), _number(row["rtf"], ".4f"),
            _number(first, ".0f", " ms"), _number(row["latency_mean_ms"], ".0f", " ms"),
            _number(theirs.rtf if theirs else None, ".4f"),
            _number(theirs.first_chunk_p50_ms if theirs else None, ".2f", " ms"),
            _number(theirs.latency_mean_ms if theirs else None, ".2f", " ms") + " |",
        ]))
    return "\n".join(lines)
