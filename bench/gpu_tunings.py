"""gpu_check.py's measurements of choices made on the CPU that apply on the GPU unmeasured.

* The RVC decoder's CPU tunings (``rvc.infer.generator``): channels-last planar convolutions and
  4 s decoding windows, chosen by CPU timings. ``decoder_layouts`` times a full-size v2 40 kHz
  decoder (random weights: the arithmetic is the real model's) in the four layouts on the device
  and says whether the served one is the fastest there; the outputs must agree.
* The LLM's per-row sampling (``sparktts.sampling.sample_row``): a few ops per row and step that
  wait for the device (``nonzero``, ``int(...)``), cheap on the CPU, perhaps dominant on a GPU.
  ``sampling_syncs`` times one step's draws for 1 and 4 rows of a full-size vocabulary where the
  logits are (the served path) and after one copy of the step's logits to the host, so the cost
  can be set against the forward step's time (step 7's tokens/s).
* What the installation occupies on disk (``disk_use``): the venv, tritonserver, the model folders.

Measurements, not pass/fail checks: a result that argues for another choice on the GPU is printed
with "->" and what to change; only a layout whose output differs fails.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = ["decoder_layouts", "disk_use", "sampling_syncs"]

SPARK_VOCAB_ROWS = 166_000  # Spark-TTS-0.5B's output rows (sparktts.sampling's docstring)


def _timed(device: str, call: Callable[[], object], repeats: int) -> float:
    """Median seconds of ``call`` on ``device`` after one warm-up run, waiting for the device each time."""
    import torch

    def wait() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    call()
    wait()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        wait()
        times.append(time.perf_counter() - started)
    return sorted(times)[len(times) // 2]


def decoder_layouts(device: str, seconds: float, *, half: bool, repeats: int = 3) -> str:
    """The full-size decoder on ``device`` in its four layouts (planar or 1-D convolutions, 4 s windows
    or one pass), in float32 and, with ``half``, the served half type (``RVC_PRECISION=fp16``: the
    decoder under float16 autocast on CUDA, bfloat16 elsewhere)."""
    import torch

    from rvc.infer.generator import DEFAULT_WINDOW_FRAMES
    from rvc.infer.synthesizer import Synthesizer
    from rvc.infer.synthesizer_config import official_config

    torch.manual_seed(0)
    model = Synthesizer(official_config("v2", 40000)).eval().to(device)
    frames = int(seconds * 100)
    phone = torch.randn(1, frames, 768, device=device)
    lengths = torch.tensor([frames], device=device)
    f0 = torch.full((1, frames), 150.0, device=device)
    pitch = torch.full((1, frames), 40, dtype=torch.long, device=device)
    sid = torch.zeros(1, dtype=torch.long, device=device)
    layouts = {"planar, 4 s windows (served)": (True, DEFAULT_WINDOW_FRAMES), "planar, one pass": (True, 0),
               "1-D, 4 s windows": (False, DEFAULT_WINDOW_FRAMES), "1-D, one pass (reference)": (False, 0)}
    dtypes: list[torch.dtype | None] = [None]
    if half:
        dtypes.append(torch.float16 if device.startswith("cuda") else torch.bfloat16)
    lines = []
    for dtype in dtypes:
        model.dec.autocast_dtype = dtype
        times, outputs = {}, {}
        for name, (planar, window) in layouts.items():
            model.dec.planar, model.dec.window_frames = planar, window

            def run() -> torch.Tensor:
                return model.infer(phone, lengths, pitch, f0, sid, deterministic=True)

            times[name] = _timed(device, run, repeats)
            outputs[name] = run().float().cpu()
        reference = outputs["1-D, one pass (reference)"]
        worst = max(float((out - reference).abs().max()) for out in outputs.values())
        allowed = 1e-4 if dtype is None else 2e-2  # a half type rounds each layout's sums differently
        if worst > allowed:
            raise RuntimeError(f"decoder layouts disagree on {device} ({dtype or 'float32'}): max {worst:.2e}")
        fastest = min(times, key=lambda name: times[name])
        served = "planar, 4 s windows (served)"
        verdict = "the served layout is the fastest" if fastest == served else (
            f"-> {fastest} is {times[served] / times[fastest]:.2f}x faster than the served layout here: "
            "turn the CPU tuning off on this device")
        line = (f"decoder {seconds:g} s on {device} in {str(dtype or 'float32').removeprefix('torch.')}: "
                + ", ".join(f"{name} {1000 * t:.0f} ms" for name, t in times.items())
                + f"; max |d| {worst:.1e}; {verdict}")
        print(line, flush=True)
        lines.append(line)
    model.dec.planar, model.dec.window_frames, model.dec.autocast_dtype = True, DEFAULT_WINDOW_FRAMES, None
    return "; ".join(lines)


def sampling_syncs(device: str, *, vocab_rows: int = SPARK_VOCAB_ROWS, repeats: int = 20) -> str:
    """One decode step's draws (temperature 0.8, top-k 50, top-p 0.95, as Spark-TTS samples) for 1 and
    4 rows where the logits are, against one copy of the step's logits to the host first (on CUDA;
    on the CPU both are the same work)."""
    import torch

    lines = []
    for rows in (1, 4):
        logits = torch.randn(rows, vocab_rows, device=device) * 4
        seeded = [torch.Generator(device=device).manual_seed(row) for row in range(rows)]
        on_device = partial(_draw_step, logits, [None] * rows, to_host=False)
        on_host = partial(_draw_step, logits, [None] * rows, to_host=True)
        seeded_on_device = partial(_draw_step, logits, seeded, to_host=False)
        device_s = _timed(device, on_device, repeats)
        seeded_s = _timed(device, seeded_on_device, repeats)
        line = (f"sampling {rows} row(s) x {vocab_rows} on {device}: {1000 * device_s:.2f} ms per step where the "
                f"logits are (seeded: {1000 * seeded_s:.2f} ms)")
        if device.startswith("cuda"):
            host_s = _timed(device, on_host, repeats)
            line += f", {1000 * host_s:.2f} ms after one host copy"
            if host_s < 0.8 * device_s:
                line += (f" -> the host syncs cost {1000 * (device_s - host_s):.2f} ms per step: sample the step's "
                         "rows on the host after one copy (unseeded rows; seeded ones keep the device generator)")
        print(line, flush=True)
        lines.append(line)
    return "; ".join(lines)


def _draw_step(logits: torch.Tensor, generators: Sequence[torch.Generator | None], *, to_host: bool) -> list[int]:
    """One decode step's draws, one row at a time as ``sparktts.decode_rows.RowSampler`` makes them
    (Spark-TTS's sampling: temperature 0.8, top-k 50, top-p 0.95); ``to_host``: after one copy."""
    from sparktts.sampling import sample_row

    step = logits.cpu() if to_host else logits
    return [sample_row(step[row : row + 1], do_sample=True, temperature=0.8, top_k=50, top_p=0.95,
                       generator=generator) for row, generator in enumerate(generators)]


def _size(path: Path) -> str:
    if not path.exists():
        return "absent"
    out = subprocess.run(["du", "-sh", "--apparent-size", str(path)], capture_output=True, text=True, timeout=120,
                         check=False).stdout.split()
    return out[0] if out else "?"


def disk_use(folders: dict[str, Path]) -> str:
    """Sizes of the installation's parts and the free space of the root file system (in the image:
    what the image and the first start cost on disk; the README's figures come from such a run)."""
    torch_spec = importlib.util.find_spec("torch")
    packages = Path(torch_spec.origin).parents[1] if torch_spec and torch_spec.origin else Path(sys.prefix)
    # the venv's own folder, and the site-packages torch comes from (inside it in the image; a checkout's
    # venv may borrow another's packages through a .pth file)
    parts = {"venv": Path(sys.prefix), "site-packages": packages, "tritonserver": Path("/opt/tritonserver"), **folders}
    total, _, free = shutil.disk_usage("/")
    line = ", ".join(f"{name} {_size(path)}" for name, path in parts.items())
    return f"disk: {line}; root file system {total / 2**30:.0f} GiB, {free / 2**30:.0f} GiB free"
