"""The Spark LLM as an ONNX Runtime GenAI model: converted once per checkpoint, cached by its hash.

``export_llm(llm_dir, cache_root, precision)`` runs ONNX Runtime GenAI's model builder
(``python -m onnxruntime_genai.models.builder -e cpu``) on the official ``LLM/`` folder and keeps
the result under ``cache_root/<precision>-<checkpoint hash>/``. The key is a SHA-256 over every
file of the folder (names and bytes), so the same checkpoint is never converted twice and a new or
edited one is converted again. The builder writes into a temporary folder beside the cache entry,
which is renamed into place only when it is complete, so a crash leaves no half model that a later
start would load. A lock file per entry (``flock``, released when its holder dies) makes a second
process wait for the first one's conversion instead of repeating it, and lets the holder delete
what a killed conversion left behind.

Three things about the builder decide how it is called:

* It loads the checkpoint with ``AutoModelForCausalLM.from_pretrained`` and no dtype, and
  transformers 5 then honours ``torch_dtype: bfloat16`` in the official ``config.json``, which
  rounds float32 weights to bfloat16 before the export. The official loader (transformers 4.46)
  runs float32, so the builder reads a staging folder whose ``config.json`` says float32 (every
  other file is linked, not copied). With that, the float32 export matches the torch path's
  logits to float rounding (``tests/sparktts_lm/test_llm_onnx.py``).
* It must not see this repository on ``sys.path``: its top-level ``triton/`` folder (no
  ``__init__.py``) passes for the ``triton`` package, and transformers' imports then fail. It runs
  as a subprocess in a neutral working directory, without ``PYTHONPATH``, and drops every path
  entry with such a folder (a development venv's ``.pth`` adds the repository root) before it
  starts the builder.
* ``int8`` quantizes the decoder's and the head's MatMuls to 8 bits (the embedding stays float32);
  ``fp32`` is the exact export, kept for parity checks.
* ``prune_lm_head=true``: a prefill computes the head for its last position only (by default it
  scores every prompt position: a 400 x 166,000 product whose logits nobody reads).

After the builder, ``sparktts.onnx_head.split_head`` writes ``decoder.onnx`` (what the decoder runs: the
head skippable) and ``head.onnx`` beside its ``model.onnx`` (graph files only, reading the same weights).

The builder's options (``BUILDER_OPTIONS``) are part of the cache key with the checkpoint's hash,
so changing them converts again.

Torch-free on purpose: the repository writer (``rvc.grpc.model_repository``) calls it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Literal

from sparktts.onnx_head import split_head

logger = logging.getLogger(__name__)

__all__ = ["OnnxExportError", "Precision", "checkpoint_hash", "export_llm"]

Precision = Literal["int8", "fp32"]
PRECISIONS: tuple[Precision, ...] = ("int8", "fp32")
MARKER_FILE = "export.json"  # written last inside the temporary folder, before the rename
_HASH_CHUNK = 1 << 20
BUILDER_OPTIONS = ("--extra_options", "prune_lm_head=true")
LAYOUT = "skippable-head-1"  # what this module writes beside the builder's files (sparktts.onnx_head); in the key
# Runs the builder module as ``python -m`` would, minus sys.path entries whose triton/ is a bare folder.
_BUILDER_BOOTSTRAP = (
    "import os, runpy, sys; "
    "sys.path[:] = [p for p in sys.path if not (os.path.isdir(os.path.join(p or '.', 'triton')) "
    "and not os.path.isfile(os.path.join(p or '.', 'triton', '__init__.py')))]; "
    "runpy.run_module('onnxruntime_genai.models.builder', run_name='__main__', alter_sys=True)"
)


class OnnxExportError(RuntimeError):
    """The model builder failed, or the checkpoint folder cannot be read."""


def checkpoint_hash(llm_dir: Path) -> str:
    """SHA-256 hex digest over every regular file of ``llm_dir`` (relative names and contents).

    Reads every byte (about 2 s per GB): a size or mtime check would miss a checkpoint replaced
    by one of the same size, which would then serve with the old weights.
    """
    digest = hashlib.sha256()
    files = sorted(path for path in llm_dir.rglob("*") if path.is_file())
    if not files:
        raise OnnxExportError(f"{llm_dir} holds no files: not an LLM checkpoint folder")
    for path in files:
        digest.update(path.relative_to(llm_dir).as_posix().encode() + b"\0")
        with path.open("rb") as handle:
            while block := handle.read(_HASH_CHUNK):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()


def export_llm(llm_dir: str | Path, cache_root: str | Path, precision: Precision = "int8") -> Path:
    """The converted model folder for this checkpoint and precision, converting it when absent.

    llm_dir: the official ``LLM/`` folder (config.json, model.safetensors, tokenizer files).
    cache_root: where conversions live (created if needed), one sub-folder per precision and hash.
    Returns the folder holding ``genai_config.json``, ``model.onnx`` (+ ``model.onnx.data``),
    ``decoder.onnx`` and ``head.onnx``.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    llm_dir = Path(llm_dir).resolve()
    if not (llm_dir / "config.json").is_file():
        raise OnnxExportError(f"Spark LLM folder {llm_dir} has no config.json")
    cache_root = Path(cache_root).resolve()
    checkpoint = checkpoint_hash(llm_dir)
    key = hashlib.sha256(f"{checkpoint} {' '.join(BUILDER_OPTIONS)} {LAYOUT}".encode()).hexdigest()
    target = cache_root / f"{precision}-{key[:16]}"
    if (target / MARKER_FILE).is_file():
        logger.info("ONNX LLM for %s (%s) found in %s", llm_dir, precision, target)
        return target
    cache_root.mkdir(parents=True, exist_ok=True)
    with (cache_root / f".{target.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / MARKER_FILE).is_file():  # converted by the process that held the lock
            return target
        for stale in cache_root.glob(f".{target.name}-*"):  # a killed conversion's
            shutil.rmtree(stale, ignore_errors=True)
        work = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=cache_root))
        try:
            build_model(llm_dir, work, precision)
            split_head(work / "model")
            record = {"source": str(llm_dir), "sha256": checkpoint, "precision": precision, "options": BUILDER_OPTIONS,
                      "layout": LAYOUT}
            (work / "model" / MARKER_FILE).write_text(json.dumps(record, indent=2) + "\n")
            shutil.rmtree(target, ignore_errors=True)  # an entry without its marker: never completed
            (work / "model").rename(target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    logger.info("converted the Spark LLM %s to ONNX (%s) in %s", llm_dir, precision, target)
    return target


def build_model(llm_dir: Path, work: Path, precision: str) -> None:
    """Run the model builder on a float32 staging view of ``llm_dir``; the model lands in work/model.

    ``precision`` is the builder's ``-p`` (int8, fp32; the bake-off also asks int4), uncached here."""
    staging = work / "checkpoint"
    staging.mkdir()
    for source in llm_dir.iterdir():
        if source.name != "config.json":
            (staging / source.name).symlink_to(source)
    config = json.loads((llm_dir / "config.json").read_text(encoding="utf-8"))
    config["torch_dtype"] = "float32"  # see the module docstring
    config.pop("dtype", None)
    (staging / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    command = [sys.executable, "-c", _BUILDER_BOOTSTRAP, "-i", str(staging),
               "-o", str(work / "model"), "-p", precision, "-e", "cpu", "-c", str(work / "builder_cache"), *BUILDER_OPTIONS]
    env = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
    done = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not (work / "model" / "genai_config.json").is_file():
        raise OnnxExportError(f"the ONNX Runtime GenAI model builder failed on {llm_dir} (exit {done.returncode}): "
                              f"{(done.stderr or done.stdout)[-2000:]}")
