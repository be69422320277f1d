"""What each Triton model's python-backend stub imports when it starts, checked in fresh interpreters.

Every tritonserver start, a restart after a crash included, spawns one stub per model and each
imports its ``model.py``; on a small CPU box those imports are most of the time from a tritonserver
death to serving again (issue 19). transformers' modeling stack costs each stub that imports it
about 4 CPU seconds on top of torch's 2, so a model that has no use for it must not import it: the
vocoder only decodes BiCodec tokens, the audio tokenizer's wav2vec2 is our own torch port, and
``spark_tts`` with the onnxruntime LLM reads its tokenizer through ``tokenizers`` alone
(``sparktts.llm_folder``). One import on the way (``sparktts.serving`` pulling in the LLM, wav2vec2
coming from transformers again) is enough to break that, hence these tests.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rvc.grpc.launcher import locate_tritonserver
from tests.fresh_interpreter import ROOT, loaded_after

MODEL_PACKAGES = ("torch", "transformers")


def _loaded_after(model: str, then_import: str) -> list[str]:
    """The model packages in sys.modules after loading ``model``'s model.py as its stub does, then
    ``import <then_import>`` (what its ``initialize`` imports)."""
    backend = (locate_tritonserver().backend_dir or Path("/opt/tritonserver/backends")) / "python"
    model_py = ROOT / "triton" / "model_repo" / model / "1" / "model.py"
    return loaded_after(
        "import importlib.util\n"
        f"sys.path.insert(0, {str(backend)!r})  # triton_python_backend_utils, as in the stub\n"
        f"spec = importlib.util.spec_from_file_location('model', {str(model_py)!r})\n"
        "spec.loader.exec_module(importlib.util.module_from_spec(spec))\n"
        f"import {then_import}",
        MODEL_PACKAGES,
    )


@pytest.mark.parametrize(
    ("model", "then_import", "loaded"),
    [
        # load_codec(with_encoder=False): BiCodec's decoder, no wav2vec2, no transformers
        ("vocoder", "sparktts.audio_tokenizer", ["torch"]),
        # the python LLM is imported in initialize (llm_backend=python) and is what brings transformers
        ("spark_tts", "sparktts.serving", ["torch"]),
        # load_codec(with_encoder=True): the BiCodec encoder and our own torch wav2vec2, no transformers
        ("audio_tokenizer", "sparktts.audio_tokenizer, sparktts.wav2vec2_features", ["torch"]),
        # llm_backend=onnxruntime: what _onnx_llm imports (its load is checked in test_llm_onnx.py)
        ("spark_tts", "sparktts.llm_onnx, sparktts.serving.stream_batcher", ["torch"]),
        # the counter-check: the python LLM really does load it
        ("spark_tts", "sparktts.llm", ["torch", "transformers"]),
    ],
)
def test_a_stub_imports_transformers_only_when_its_model_needs_it(model: str, then_import: str, loaded: list[str]) -> None:
    assert _loaded_after(model, then_import) == loaded
