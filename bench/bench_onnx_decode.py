"""The onnxruntime LLM backend's decode: one run per step for every row, against one generator per row.

The full-size Spark LLM (random weights in the official layout, ``bench_llm_engines.write_full_llm``)
is exported once to int8 (``sparktts.onnx_export``, cached by its hash under ``--work``) and decoded
in this process three ways, through the serving path's sampler (``RowSampler``: top-k 50, top-p 0.95,
temperature 0.8, unseeded), on ``--threads`` engine threads with torch on one:

* ``genai generators`` (the baseline, the backend until 2026-12-03): one ONNX Runtime GenAI
  ``og.Generator`` per row, fed the id our sampler drew, rows stepped one after another;
* ``decoder`` (``sparktts.onnx_decoder`` through ``OnnxBatch``): every row of a step in one run of the
  graph, rows at their own lengths, the full head;
* ``decoder + restrict_vocab``: the same, the head cut to the grammar's rows.

Rows join with a ``--prompt-tokens`` prompt; a step is ``(t(1 + steps) - t(1)) / steps`` at each batch
size (prefill excluded), the minimum of ``--repeats``. Then fidelity: the largest difference between
the decoder's logits and GenAI's (teacher-forced, 20 steps after the prompt), and both decoder paths
against a float32 transformers forward over ``--fidelity-steps`` teacher-forced steps
(``bench_llm_engines.fidelity``: cosine and relative error at the reference's top-50 ids; for the grammar
head, its top-50 among the grammar's rows, the only ones that head scores).

Usage: ``python bench/bench_onnx_decode.py [--threads 2] [--batches 1,2,4,8] [--steps 24] [--repeats 2]
[--work DIR]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo root
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/

import sparktts  # noqa: E402,F401  (installs the triton-folder guard before torch loads)

# isort: split
import torch  # noqa: E402

from sparktts.decode_rows import RowSampler  # noqa: E402
from sparktts.generation import GenerationParams  # noqa: E402
from sparktts.llm_onnx import OnnxBatch, OnnxSparkLM  # noqa: E402
from sparktts.onnx_export import export_llm  # noqa: E402

BASELINE = "genai generators"


class GenaiRows:
    """The previous serving path, kept here as the baseline: one ``og.Generator`` per row."""

    def __init__(self, lm: OnnxSparkLM, model: Any) -> None:
        self.lm, self.model = lm, model
        self.rows: list[tuple[Any, RowSampler]] = []

    def join(self, prompt: list[int], params: GenerationParams) -> None:
        import onnxruntime_genai as og

        search = og.GeneratorParams(self.model)
        search.set_search_options(max_length=len(prompt) + params.max_new_tokens, batch_size=1)
        generator = og.Generator(self.model, search)
        generator.append_tokens(np.array([prompt], dtype=np.int32))
        sampler = RowSampler(self.lm, params)
        token = sampler.draw(self._logits(generator))
        if not sampler.finished:
            generator.append_tokens(np.array([[token]], dtype=np.int32))
            self.rows.append((generator, sampler))

    def step(self) -> None:
        for generator, sampler in list(self.rows):
            token = sampler.draw(self._logits(generator))
            if sampler.finished:
                self.rows.remove((generator, sampler))
            else:
                generator.append_tokens(np.array([[token]], dtype=np.int32))

    def __len__(self) -> int:
        return len(self.rows)

    @staticmethod
    def _logits(generator: Any) -> torch.Tensor:
        return torch.from_numpy(np.array(generator.get_logits(), dtype=np.float32).reshape(1, -1))


def decode_time(new_batch: Callable[[], Any], join: Callable[[Any, int, int], None], rows: int, steps: int,
                repeats: int) -> tuple[float, float]:
    """(seconds per step, seconds per prefill) at ``rows`` rows, minimum of ``repeats``.

    join(batch, row, new_tokens) adds one row with that budget."""
    def run(new_tokens: int) -> tuple[float, float]:
        batch = new_batch()
        start = time.perf_counter()
        for row in range(rows):
            join(batch, row, new_tokens)
        joined = time.perf_counter()
        while len(batch):
            batch.step()
        return time.perf_counter() - joined, (joined - start) / rows

    short = min(run(1) for _ in range(repeats))
    long = min(run(1 + steps) for _ in range(repeats))
    return (long[0] - short[0]) / steps, min(short[1], long[1])


def largest_difference(lm: OnnxSparkLM, model: Any, prompt: list[int], steps: int) -> float:
    """max |decoder - GenAI| over the prompt's logits and ``steps`` teacher-forced ones."""
    import onnxruntime_genai as og

    search = og.GeneratorParams(model)
    search.set_search_options(max_length=len(prompt) + steps + 1, batch_size=1)
    generator = og.Generator(model, search)
    generator.append_tokens(np.array([prompt], dtype=np.int32))
    row = lm.open_row(prompt)
    worst = 0.0
    for step in range(steps + 1):
        ours = row.logits().numpy()[0]
        theirs = np.array(generator.get_logits(), dtype=np.float32).reshape(-1)
        worst = max(worst, float(np.abs(ours - theirs).max()))
        if step < steps:
            token = int(np.argmax(theirs))
            row.feed(token)
            generator.append_tokens(np.array([[token]], dtype=np.int32))
    return worst


def teacher_forced(lm: OnnxSparkLM, prompt: list[int], forced: list[int], restrict: bool) -> np.ndarray:
    """(len(forced), K) decoder scores: the prompt's, then after each forced id but the last."""
    decoder = lm.decoder
    head = lm.grammar_head() if restrict else None
    slots = decoder.new_slots()
    rows = [decoder.prefill(slots, slots.add(len(prompt) + len(forced)), prompt, head)]
    rows += [decoder.step(slots, [token], head)[0] for token in forced[:-1]]
    return np.stack(rows)


def fidelity_rows(lm: OnnxSparkLM, llm_dir: Path, steps: int, threads: int) -> list[tuple[str, Any]]:
    """(path, Fidelity) of the full head and the grammar head against float32."""
    from bench_llm_engines import TOP, fidelity, workload
    from llm_engines import reference_logits

    work = workload(llm_dir, prompt_tokens=300, forced_steps=steps)
    reference = reference_logits(llm_dir, work.prompt, work.forced, threads)
    torch.set_num_threads(1)  # reference_logits took the threads for its forward
    top = np.argsort(-reference, axis=1)[:, :TOP]
    rows = lm.grammar_ids().numpy()
    grammar_top = np.argsort(-reference[:, rows], axis=1)[:, :TOP]  # positions within the grammar rows
    return [
        ("decoder, full head", fidelity(teacher_forced(lm, work.prompt, work.forced, False), top,
                                        np.take_along_axis(reference, top, axis=1))),
        ("decoder + restrict_vocab (grammar rows)", fidelity(teacher_forced(lm, work.prompt, work.forced, True),
                                                             grammar_top,
                                                             np.take_along_axis(reference[:, rows], grammar_top, axis=1))),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batches", default="1,2,4,8")
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--prompt-tokens", type=int, default=400)
    parser.add_argument("--layers", type=int, default=24, help="fewer for a quick smoke run")
    parser.add_argument("--fidelity-steps", type=int, default=100, help="0: skip the float32 comparison")
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench_onnx_decode"),
                        help="where the random LLM folder and its export are kept between runs")
    args = parser.parse_args()
    import onnxruntime_genai as og
    from bench_llm_engines import write_full_llm

    torch.set_num_threads(1)  # what the stub leaves torch (sparktts.llm_onnx.threads_for_the_engine)
    llm_dir = write_full_llm(args.work / f"LLM-{args.layers}", args.layers, seed=0)
    start = time.perf_counter()
    onnx_dir = export_llm(llm_dir, args.work / "cache", "int8")
    print(f"int8 export ready in {time.perf_counter() - start:.0f} s: {onnx_dir}", flush=True)
    lm = OnnxSparkLM.from_pretrained(llm_dir, onnx_dir, threads=args.threads)
    config = og.Config(str(onnx_dir))
    options = {"intra_op_num_threads": args.threads, "inter_op_num_threads": 1}
    config.overlay(json.dumps({"model": {"decoder": {"session_options": options}}}))
    genai = og.Model(config)
    prompt = torch.randint(300, 160_000, (1, args.prompt_tokens), generator=torch.Generator().manual_seed(0))
    ids = prompt[0].tolist()

    def params(new_tokens: int, restrict: bool = False) -> GenerationParams:
        return GenerationParams(max_new_tokens=new_tokens, restrict_vocab=restrict)

    ways: dict[str, tuple[Callable[[], Any], Callable[[Any, int, int], None]]] = {
        BASELINE: (lambda: GenaiRows(lm, genai), lambda batch, row, new: batch.join(ids, params(new))),
        "decoder": (lambda: OnnxBatch(lm), lambda batch, row, new: batch.join(row, prompt, params(new))),
        "decoder + restrict_vocab": (lambda: OnnxBatch(lm, restrict_vocab=True),
                                     lambda batch, row, new: batch.join(row, prompt, params(new, True))),
    }
    batches = [int(value) for value in args.batches.split(",")]
    results: dict[str, dict[int, tuple[float, float]]] = {name: {} for name in ways}
    for rows in batches:  # the ways alternate at each batch size, so a load change hits all of them
        for name, (new_batch, join) in ways.items():
            results[name][rows] = decode_time(new_batch, join, rows, args.steps, args.repeats)
            step, prefill = results[name][rows]
            print(f"  {name}, {rows} rows: {1000 * step:.1f} ms per step, prefill {prefill:.2f} s per row", flush=True)
    difference = largest_difference(lm, genai, ids, 20)

    print(f"\nfull-size Spark LLM (int8, {args.layers} layers), {args.threads} engine threads, "
          f"{args.prompt_tokens}-token prompts, sampling top-k 50 / top-p 0.95 / T 0.8")
    print("| path | " + " | ".join(f"{rows} row{'s' if rows > 1 else ''} tok/s (x baseline)" for rows in batches)
          + " | prefill per row |")
    print("|---|" + "---|" * (len(batches) + 1))
    for name in ways:
        cells = []
        for rows in batches:
            step = results[name][rows][0]
            ratio = results[BASELINE][rows][0] / step
            cells.append(f"{rows / step:.1f} ({ratio:.2f}x)")
        prefill = min(results[name][rows][1] for rows in batches)
        print(f"| {name} | " + " | ".join(cells) + f" | {prefill:.2f} s |")
    print(f"\ndecoder logits vs GenAI's, prompt + 20 teacher-forced steps: max |difference| {difference:.2e}")
    if args.fidelity_steps:
        print(f"\nagainst float32 (300-token prompt, {args.fidelity_steps} teacher-forced steps, top-50):")
        print("| path | cosine mean / min | max relative error |\n|---|---|---|")
        for name, found in fidelity_rows(lm, llm_dir, args.fidelity_steps, args.threads):
            print(f"| {name} | {found.cosine_mean:.6f} / {found.cosine_min:.6f} | {found.max_rel_error:.3f} |")


if __name__ == "__main__":
    main()
