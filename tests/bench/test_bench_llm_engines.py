"""The LLM engine bake-off's measuring parts, on the tiny demo LLM with the torch baseline only."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.bench_llm_engines import ENGINES, TOP, fidelity, workload
from sparktts.demo_llm import write_demo_llm

# isort: split
# bench/ is on the path once bench_llm_engines is imported
from llm_engines import TorchRunner, reference_logits

ROOT = Path(__file__).resolve().parents[2]


def test_fidelity_is_exact_for_the_reference_itself_and_sees_a_perturbation() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(3.0, 1.0, (4, 200)).astype(np.float32)
    ids = np.argsort(-logits, axis=1)[:, :TOP]
    values = np.take_along_axis(logits, ids, axis=1)
    same = fidelity(logits, ids, values)
    assert same.cosine_min == pytest.approx(1.0) and same.max_rel_error == 0.0
    perturbed = logits.copy()
    perturbed[2, ids[2, 0]] *= 1.5  # one top logit of one step off by 50 %
    moved = fidelity(perturbed, ids, values)
    assert moved.max_rel_error == pytest.approx(0.5, rel=1e-5)
    assert moved.cosine_min < 0.999 < moved.cosine_mean


def test_torch_teacher_forced_logits_match_the_float32_reference(tmp_path: Path) -> None:
    llm_dir = write_demo_llm(tmp_path / "LLM", ends_speech=False)
    work = workload(llm_dir, prompt_tokens=12, forced_steps=6)
    assert len(work.batch) == 4 and all(len(row) == 12 for row in work.batch)
    reference = reference_logits(llm_dir, work.prompt, work.forced, threads=1)
    ids = np.argsort(-reference, axis=1)[:, :TOP]
    runner = TorchRunner(llm_dir, threads=1, restrict=False)
    logits = runner.teacher_logits(work.prompt, work.forced)
    assert logits.shape == reference.shape == (6, int(runner.lm.vocab_rows))
    scores = fidelity(logits, ids, np.take_along_axis(reference, ids, axis=1))
    assert scores.cosine_min > 0.99999 and scores.max_rel_error < 1e-3


@pytest.mark.slow  # four interpreters start (parent, reference, convert, measure): ~30 s on an idle box
def test_the_bench_runs_with_the_torch_baseline_and_says_why_engines_are_missing(tmp_path: Path) -> None:
    # one torch row is enough, and one ORT conversion (each exports the model anew)
    wanted = {key: engine for key, engine in ENGINES.items() if key not in ("torch-restrict", "ort-int4")}
    command = [sys.executable, str(ROOT / "bench" / "bench_llm_engines.py"), "--tiny", "--engines", ",".join(wanted),
               "--rounds", "1", "--decode-steps", "2", "--prompt-tokens", "8", "--fidelity-steps", "3",
               "--threads", "1", "--workdir", str(tmp_path)]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = {line[:34].strip(): line[34:] for line in done.stdout.splitlines()}
    baseline = lines["torch fast_matmul (baseline)"].split()  # b1 tok/s, x base, b4 tok/s, x base, ...
    assert float(baseline[0]) > 0 and baseline[1] == baseline[3] == "1.00"
    for engine in wanted.values():
        if engine.missing():  # this venv has no engines: each one says why
            assert lines[engine.name].strip() == f"not measured: {engine.missing()}"
        else:
            assert not lines[engine.name].strip().startswith("not measured"), lines[engine.name]
