"""Throughput and per-job overhead of the RVC worker pool (rvc/server) on full-size random weights, CPU.

    python bench/bench_pool.py --seconds 5 --jobs 4 --workers 1 2 [--json out.json]

The full-size assets of bench_rvc.py (HuBERT base, v2 40 kHz synthesizer, full RMVPE, a
10k x 768 IVF256,Flat index) are written to a scratch folder and loaded by the pool's workers
through the production path (voice resolved by name, index found by RVC's naming rule). Every
process (this one and each worker) uses one torch thread. On the same distinct 5 s inputs:

* in-process: ``VoiceConverter.convert`` in this process, one job at a time;
* pool latency: a 1-worker ``RVCServer``, one job at a time (submit -> result), interleaved with
  the in-process calls so both see the same machine load;
* overhead per job, three ways: (a) wall time, pool latency / in-process time - 1; (b) CPU time,
  (this process's + the worker's CPU during a pool job) / in-process CPU - 1; (c) from each job's
  own timings, (pool_total - total) / total: everything the pool adds around the worker's
  conversion (shared memory both ways, pipes, scheduling, queue wait). (c) does not depend on two
  separate conversions taking the same time, so on a loaded machine it is the steady one;
* throughput: all jobs submitted at once to pools of 1 and 2 workers, jobs/s.

Outputs of the pool and the in-process converter are compared (deterministic mode): identical.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))
sys.path.insert(0, str(BENCH_DIR))

import rvc  # noqa: E402,F401  (installs the triton-folder guard before torch loads)

# isort: split
import torch  # noqa: E402
from bench_rvc import SAMPLE_RATE, synthetic_voice, write_full_size_assets  # noqa: E402

from rvc.infer.converter import ConversionParams, ConverterAssets, VoiceConverter  # noqa: E402
from rvc.server import PoolConfig, RVCServer  # noqa: E402
from rvc.server.voices import resolve_voice  # noqa: E402

VOICE = "bench_e1_s1"  # RVC's <experiment>_e<epoch>_s<step> name, so the pool finds added_*_bench_v2.index


def prepare_assets(folder: Path) -> dict[str, Path]:
    paths = write_full_size_assets(folder)
    os.link(paths["voice"], folder / f"{VOICE}.pth")
    return paths


def pool_config(folder: Path, paths: dict[str, Path], workers: int, jobs: int) -> PoolConfig:
    return PoolConfig(
        weights_dir=folder,
        hubert_path=paths["hubert"],
        rmvpe_path=paths["rmvpe"],
        default_voice=VOICE,
        num_workers=workers,
        max_queue=jobs + 1,
        job_timeout_s=3600.0,
        start_timeout_s=1800.0,
    )


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure_latency(
    pool: RVCServer, converter: VoiceConverter, inputs: list[np.ndarray], params: ConversionParams
) -> dict[str, float]:
    in_process, pool_latency, added, service, ipc, cpu_in, cpu_pool = [], [], [], [], [], [], []
    (worker_pid,) = (worker.pid for worker in pool.status().workers)
    if worker_pid is None:
        raise SystemExit("the pool's one worker has no process id: it did not start")
    for audio in inputs:
        started, cpu = time.perf_counter(), time.process_time()
        expected = converter.convert(VOICE, audio, SAMPLE_RATE, params)
        in_process.append(time.perf_counter() - started)
        cpu_in.append(time.process_time() - cpu)
        started, cpu, worker_cpu = time.perf_counter(), time.process_time(), process_cpu_s(worker_pid)
        result = pool.submit(audio, SAMPLE_RATE, params).result()
        pool_latency.append(time.perf_counter() - started)
        # this process's share (supervisor thread, shared-memory copies) plus the worker's
        cpu_pool.append(time.process_time() - cpu + process_cpu_s(worker_pid) - worker_cpu)
        if not np.array_equal(result.audio, expected.audio):
            raise SystemExit("pool and in-process outputs differ: routing or determinism is broken")
        added.append(result.timings["pool_total"] - result.timings["total"])
        service.append(result.timings["total"])
        ipc.append(result.timings["ipc"])
    return {
        "in_process_s": statistics.mean(in_process),
        "pool_latency_s": statistics.mean(pool_latency),
        "overhead_end_to_end": statistics.mean(pool_latency) / statistics.mean(in_process) - 1.0,
        "in_process_cpu_s": statistics.mean(cpu_in),
        "pool_cpu_s": statistics.mean(cpu_pool),
        "overhead_cpu": statistics.mean(cpu_pool) / statistics.mean(cpu_in) - 1.0,
        "pool_added_s": statistics.mean(added),
        "overhead_per_job": statistics.mean(added) / statistics.mean(service),
        "ipc_s": statistics.mean(ipc),
    }


def measure_throughput(
    pool: RVCServer, inputs: list[np.ndarray], params: ConversionParams
) -> dict[str, float]:
    started = time.perf_counter()
    handles = [pool.submit(audio, SAMPLE_RATE, params) for audio in inputs]
    results = [handle.result() for handle in handles]
    elapsed = time.perf_counter() - started
    return {
        "jobs": len(inputs),
        "wall_s": elapsed,
        "jobs_per_s": len(inputs) / elapsed,
        "ipc_s": statistics.mean(r.timings["ipc"] for r in results),
    }


def run(args: argparse.Namespace) -> dict[str, object]:
    torch.set_num_threads(1)
    params = ConversionParams(f0_method=args.f0_method, deterministic=True)
    inputs = [synthetic_voice(args.seconds, seed=seed) for seed in range(args.jobs)]
    report: dict[str, object] = {
        "seconds": args.seconds,
        "jobs": args.jobs,
        "f0_method": args.f0_method,
        "cpus": len(os.sched_getaffinity(0)),
        "load_before": os.getloadavg()[0],
    }
    with tempfile.TemporaryDirectory(prefix="bench_pool_") as scratch:
        folder = Path(scratch)
        started = time.perf_counter()
        paths = prepare_assets(folder)
        print(f"wrote full-size assets in {time.perf_counter() - started:.0f} s", flush=True)
        files = resolve_voice(folder, VOICE)
        converter = VoiceConverter(ConverterAssets(paths["hubert"], paths["rmvpe"]))
        converter.load_voice(VOICE, files.pth, files.index)
        converter.warm_up()
        for workers in args.workers:
            started = time.perf_counter()
            with RVCServer(pool_config(folder, paths, workers, args.jobs)) as pool:
                print(f"{workers} worker(s) ready in {time.perf_counter() - started:.0f} s", flush=True)
                if workers == 1:
                    report["latency"] = measure_latency(pool, converter, inputs, params)
                    print(json.dumps(report["latency"]), flush=True)
                report[f"throughput_{workers}"] = measure_throughput(pool, inputs, params)
                print(json.dumps(report[f"throughput_{workers}"]), flush=True)
    report["load_after"] = os.getloadavg()[0]
    return report


def print_table(report: dict) -> None:
    latency = report.get("latency", {})
    print(
        f"\n{report['jobs']} jobs of {report['seconds']:g} s, f0 {report['f0_method']}, {report['cpus']} CPUs, "
        f"load {report['load_before']:.1f} -> {report['load_after']:.1f}"
    )
    if latency:
        print("| measure | value |\n|---|---|")
        print(f"| in-process convert, mean | {latency['in_process_s']:.2f} s |")
        print(f"| pool submit -> result, 1 worker, mean | {latency['pool_latency_s']:.2f} s |")
        print(f"| pool overhead end to end (wall) | {100 * latency['overhead_end_to_end']:+.2f} % |")
        print(
            f"| CPU per job: in-process {latency['in_process_cpu_s']:.2f} s, pool {latency['pool_cpu_s']:.2f} s | "
            f"{100 * latency['overhead_cpu']:+.2f} % |"
        )
        print(
            f"| pool overhead per job (pool_total - total) | {1000 * latency['pool_added_s']:.1f} ms = "
            f"{100 * latency['overhead_per_job']:.3f} % |"
        )
    for key in sorted(k for k in report if k.startswith("throughput_")):
        row = report[key]
        print(
            f"| throughput, {key.split('_')[1]} worker(s) | {row['jobs_per_s']:.3f} jobs/s "
            f"({row['jobs']} jobs in {row['wall_s']:.1f} s) |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="input length (default 5)")
    parser.add_argument("--jobs", type=int, default=4, help="jobs per measurement (default 4)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="pool sizes (default 1 2)")
    parser.add_argument("--f0-method", default="rmvpe")
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args()
    report = run(args)
    print_table(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
