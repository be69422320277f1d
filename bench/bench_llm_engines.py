"""LLM engine bake-off: the Spark LLM through each installed CPU engine against our torch path.

The model is the full-size Spark LLM (Qwen2 0.5B layout, vocabulary 166,000) with random weights,
written once as an official-layout ``LLM/`` folder (speed does not depend on weight values); or
``--llm-dir`` (a real checkpoint's ``LLM/``), or ``--tiny`` (the demo LLM, for a smoke run). Each
engine (bench/llm_engines.py) converts that folder once (cached under ``--workdir``, keyed by the
folder's weights) and then runs in a process of its own, ``--rounds`` times, engines interleaved
within a round so that load changes on a shared box hit all alike; the minimum over rounds is kept.
Per engine:

* decode tokens/s at batch 1 and the aggregate at batch 4, greedy on ``--prompt-tokens`` prompts:
  a step is ``(t(1 + steps) - t(1)) / steps`` (prefill excluded), as in bench_tts;
* prefill: one ``--prompt-tokens`` prompt to its first logits;
* peak resident memory of the measuring process (imports + model + run), model size on disk,
  installed size of the engine's runtime packages, conversion seconds;
* fidelity against the float32 reference (one transformers forward, plain ``F.linear``): for
  ``--fidelity-steps`` teacher-forced steps after the prompt, the engine's logits at the
  reference's top-50 ids: mean and minimum cosine similarity, and the maximum relative error
  ``|engine - reference| / |reference|``. Token agreement is meaningless on random weights.

Engines are optional: one that is not installed, or fails, prints why. Ratios are against the torch
baseline of the same run. Run it with the interpreter that has the engines installed, e.g.
``nice -n 10 /tmp/engines/bin/python bench/bench_llm_engines.py [--engines torch,llama-q8_0]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))  # its sibling, also when imported as bench.bench_llm_engines

import sparktts  # noqa: E402,F401  (installs the triton-folder guard before torch loads)

# isort: split
from llm_engines import ENGINES, Runner  # noqa: E402

TOP = 50


@dataclass(frozen=True)
class Measurement:
    """One measuring process's figures (seconds, bytes); fidelity only when asked for."""

    prefill: float
    step1: float
    step4: float
    load: float
    peak_rss: int
    cosine_mean: float | None = None
    cosine_min: float | None = None
    max_rel_error: float | None = None


@dataclass(frozen=True)
class Fidelity:
    cosine_mean: float
    cosine_min: float
    max_rel_error: float


def fidelity(logits: np.ndarray, reference_ids: np.ndarray, reference_values: np.ndarray) -> Fidelity:
    """logits: (S, V) an engine's teacher-forced logits; reference_*: (S, TOP) the fp32 top ids and values."""
    picked = np.take_along_axis(logits.astype(np.float64), reference_ids, axis=1)
    reference = reference_values.astype(np.float64)
    cosine = (picked * reference).sum(1) / (np.linalg.norm(picked, axis=1) * np.linalg.norm(reference, axis=1))
    relative = np.abs(picked - reference) / np.abs(reference)
    return Fidelity(float(cosine.mean()), float(cosine.min()), float(relative.max()))


def peak_rss() -> int:
    for line in Path("/proc/self/status").read_text(encoding="utf-8").splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def best_time(fn: object, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()  # type: ignore[operator]  # a zero-argument callable
        best = min(best, time.perf_counter() - start)
    return best


# ---------------------------------------------------------------------------------------------- the model
def write_full_llm(out: Path, layers: int, seed: int) -> Path:
    """The official ``LLM/`` layout at full size: the demo tokenizer (Spark's added tokens in order)
    and random N(0, 0.02) weights for the released Qwen2 config, float32 safetensors, tied head."""
    import torch
    from safetensors.torch import save_file
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from sparktts.demo_llm import write_demo_llm
    from sparktts.official import LLM_CONFIG

    if (out / ".done").is_file():
        return out
    write_demo_llm(out)
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    config.update({**LLM_CONFIG, "num_hidden_layers": layers, "max_window_layers": layers})
    (out / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    qwen = Qwen2Config(**{k: v for k, v in config.items() if k not in ("architectures", "torch_dtype")})
    with torch.device("meta"):
        model = Qwen2ForCausalLM(qwen)
    model = model.to_empty(device="cpu")
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.dim() == 1:
                param.fill_(1.0) if name.endswith("norm.weight") else param.normal_(0.0, 0.02, generator=generator)
            else:
                param.normal_(0.0, 0.02, generator=generator)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / ".done").write_text("ok\n", encoding="utf-8")
    return out


def weights_key(llm_dir: Path) -> str:
    """sha256 of config.json + model.safetensors: what a conversion is cached under."""
    digest = hashlib.sha256((llm_dir / "config.json").read_bytes())
    with (llm_dir / "model.safetensors").open("rb") as weights:
        for block in iter(lambda: weights.read(1 << 24), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class Workload:
    prompt: list[int]
    batch: list[list[int]]
    forced: list[int]


def workload(llm_dir: Path, prompt_tokens: int, forced_steps: int) -> Workload:
    """Random prompt ids below the tokenizer's size, forced ids from the semantic tokens."""
    tokenizer = json.loads((llm_dir / "tokenizer.json").read_text(encoding="utf-8"))
    config = json.loads((llm_dir / "config.json").read_text(encoding="utf-8"))
    semantic = [t["id"] for t in tokenizer["added_tokens"] if t["content"].startswith("<|bicodec_semantic_")]
    high = min(int(config["vocab_size"]), 151000)
    rng = np.random.default_rng(0)
    batch = rng.integers(0, high, (4, prompt_tokens)).tolist()
    forced = rng.choice(np.array(semantic), forced_steps).tolist()
    return Workload(prompt=batch[0], batch=batch, forced=[int(t) for t in forced])


# ---------------------------------------------------------------------------------------------- child stages
def child(args: argparse.Namespace) -> None:
    """One stage in this process; the result goes to ``--result`` as JSON."""
    llm_dir, result = Path(args.llm_dir), Path(args.result)
    work = workload(llm_dir, args.prompt_tokens, args.fidelity_steps)
    if args.child == "reference":
        from llm_engines import reference_logits

        logits = reference_logits(llm_dir, work.prompt, work.forced, args.threads)
        ids = np.argsort(-logits, axis=1)[:, :TOP]
        np.savez(result, ids=ids, values=np.take_along_axis(logits, ids, axis=1))
        return
    engine = ENGINES[args.engine]
    model_path = Path(args.model_path)
    if args.child == "convert":
        start = time.perf_counter()
        path = engine.convert(llm_dir, model_path, args.threads)
        result.write_text(json.dumps({"seconds": time.perf_counter() - start, "path": str(path)}), encoding="utf-8")
        return
    start = time.perf_counter()
    runner: Runner = engine.load(model_path, llm_dir, args.threads)
    load = time.perf_counter() - start
    steps = args.decode_steps
    runner.greedy([work.prompt], 2)  # warm-up: first-call allocations and kernel selection
    prefill = best_time(lambda: runner.prefill(work.prompt), 2)
    step = {}
    for batch in (1, 4):
        rows = work.batch[:batch]
        first = best_time(lambda: runner.greedy(rows, 1), 1)  # noqa: B023  (called at once)
        full = best_time(lambda: runner.greedy(rows, 1 + steps), 1)  # noqa: B023
        step[batch] = max(full - first, 1e-9) / steps
    scores: Fidelity | None = None
    if args.fidelity and engine.scores_all_rows:
        reference = np.load(args.reference)
        scores = fidelity(runner.teacher_logits(work.prompt, work.forced), reference["ids"], reference["values"])
    measured = Measurement(prefill=prefill, step1=step[1], step4=step[4], load=load, peak_rss=peak_rss(),
                           **(asdict(scores) if scores else {}))
    result.write_text(json.dumps(asdict(measured)), encoding="utf-8")


def spawn(args: argparse.Namespace, stage: str, result: Path, **extra: object) -> str | None:
    """Run one stage in a fresh interpreter (neutral cwd); None on success, else the error's tail."""
    command = [sys.executable, str(Path(__file__).resolve()), "--child", stage, "--result", str(result),
               "--threads", str(args.threads), "--prompt-tokens", str(args.prompt_tokens),
               "--decode-steps", str(args.decode_steps), "--fidelity-steps", str(args.fidelity_steps),
               "--llm-dir", str(args.llm_dir)]
    for key, value in extra.items():
        command += [f"--{key.replace('_', '-')}"] + ([] if value is True else [str(value)])
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, cwd=args.workdir, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        return " | ".join(lines[-3:]) or f"exit code {done.returncode}"
    return None


def directory_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engines", default=",".join(ENGINES), help=f"comma-separated from {', '.join(ENGINES)}")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--prompt-tokens", type=int, default=300)
    parser.add_argument("--decode-steps", type=int, default=32)
    parser.add_argument("--fidelity-steps", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--llm-layers", type=int, default=24, help="layers of the random full-size model")
    parser.add_argument("--llm-dir", help="an existing LLM/ folder instead of the random full-size one")
    parser.add_argument("--tiny", action="store_true", help="the tiny demo LLM (a smoke run)")
    parser.add_argument("--workdir", default="/tmp/bench_llm_engines", help="models and conversions are cached here")
    parser.add_argument("--child", choices=("reference", "convert", "measure"), help=argparse.SUPPRESS)
    parser.add_argument("--engine", help=argparse.SUPPRESS)
    parser.add_argument("--model-path", help=argparse.SUPPRESS)
    parser.add_argument("--reference", help=argparse.SUPPRESS)
    parser.add_argument("--fidelity", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    workdir = Path(args.workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    args.workdir = str(workdir)
    if args.llm_dir:
        llm_dir = Path(args.llm_dir).resolve()
    elif args.tiny:
        from sparktts.demo_llm import write_demo_llm

        llm_dir = write_demo_llm(workdir / "LLM-tiny", ends_speech=False)
    else:
        print(f"writing the full-size random LLM ({args.llm_layers} layers) ...", flush=True)
        llm_dir = write_full_llm(workdir / f"LLM-full-{args.llm_layers}", args.llm_layers, seed=0)
    args.llm_dir = str(llm_dir)
    key = weights_key(llm_dir)
    cache = workdir / "conversions" / key
    cache.mkdir(parents=True, exist_ok=True)
    wanted = [name.strip() for name in args.engines.split(",") if name.strip()]
    unknown = [name for name in wanted if name not in ENGINES]
    if unknown:
        parser.error(f"--engines: unknown {unknown}; choose from {', '.join(ENGINES)}")
    if "torch" not in wanted:
        wanted.insert(0, "torch")  # the baseline every ratio is against

    reference = cache / "reference.npz"
    if not reference.is_file():
        print("float32 reference logits ...", flush=True)
        error = spawn(args, "reference", reference)
        if error:
            raise SystemExit(f"the float32 reference failed: {error}")

    failed: dict[str, str] = {}
    paths: dict[str, Path] = {}
    convert_seconds: dict[str, float] = {}
    for name in wanted:
        engine = ENGINES[name]
        reason = engine.missing()
        if reason:
            failed[name] = reason
            continue
        print(f"converting for {engine.name} ...", flush=True)
        out = cache / name
        error = spawn(args, "convert", workdir / f"convert-{name}.json", engine=name, model_path=out)
        if error:
            failed[name] = f"conversion failed: {error}"
            continue
        converted = json.loads((workdir / f"convert-{name}.json").read_text(encoding="utf-8"))
        paths[name], convert_seconds[name] = Path(converted["path"]), converted["seconds"]

    best: dict[str, Measurement] = {}
    for round_index in range(args.rounds):
        for name in [n for n in wanted if n in paths and n not in failed]:
            print(f"round {round_index + 1}/{args.rounds}: {ENGINES[name].name} ...", flush=True)
            result = workdir / f"measure-{name}.json"
            error = spawn(args, "measure", result, engine=name, model_path=paths[name], reference=reference,
                          **({"fidelity": True} if round_index == 0 else {}))
            if error:
                failed[name] = f"run failed: {error}"
                continue
            measured = Measurement(**json.loads(result.read_text(encoding="utf-8")))
            previous = best.get(name)
            if previous is None:
                best[name] = measured
            else:
                best[name] = Measurement(
                    prefill=min(previous.prefill, measured.prefill), step1=min(previous.step1, measured.step1),
                    step4=min(previous.step4, measured.step4), load=min(previous.load, measured.load),
                    peak_rss=max(previous.peak_rss, measured.peak_rss), cosine_mean=previous.cosine_mean,
                    cosine_min=previous.cosine_min, max_rel_error=previous.max_rel_error)
    report(args, best, failed, paths, convert_seconds)


def report(args: argparse.Namespace, best: dict[str, Measurement], failed: dict[str, str],
           paths: dict[str, Path], convert_seconds: dict[str, float]) -> None:
    mib = 1024 * 1024
    print()
    print(f"threads {args.threads}, prompt {args.prompt_tokens} tokens, {args.decode_steps} decode steps, "
          f"fidelity over {args.fidelity_steps} teacher-forced steps (top-{TOP} of fp32), min of {args.rounds} "
          f"rounds, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; model {args.llm_dir}")
    header = (f"{'engine':34s} {'b1 tok/s':>8s} {'x base':>6s} {'b4 tok/s':>8s} {'x base':>6s} {'prefill s':>9s} "
              f"{'cos mean':>9s} {'cos min':>9s} {'max rel':>8s} {'RSS MiB':>7s} {'model MiB':>9s} "
              f"{'inst MiB':>8s} {'conv s':>6s}")
    print(header)
    print("-" * len(header))
    base = best.get("torch")
    for name, row in best.items():
        engine = ENGINES[name]
        tps1, tps4 = 1 / row.step1, 4 / row.step4
        ratio1 = f"{tps1 * base.step1:6.2f}" if base else f"{'-':>6s}"
        ratio4 = f"{tps4 * base.step4 / 4:6.2f}" if base else f"{'-':>6s}"
        cos_mean = f"{row.cosine_mean:9.6f}" if row.cosine_mean is not None else f"{'-':>9s}"
        cos_min = f"{row.cosine_min:9.6f}" if row.cosine_min is not None else f"{'-':>9s}"
        rel = f"{row.max_rel_error:8.4f}" if row.max_rel_error is not None else f"{'-':>8s}"
        model_bytes = directory_bytes(paths[name])
        print(f"{engine.name:34s} {tps1:8.2f} {ratio1} {tps4:8.2f} {ratio4} {row.prefill:9.3f} {cos_mean} {cos_min} "
              f"{rel} {row.peak_rss / mib:7.0f} {model_bytes / mib:9.0f} {engine.install_bytes() / mib:8.0f} "
              f"{convert_seconds.get(name, 0.0):6.1f}" + (f"  ({engine.note})" if engine.note else ""))
    for name, reason in failed.items():
        print(f"{ENGINES[name].name:34s} not measured: {reason}")


if __name__ == "__main__":
    main()
