"""Prepare a servable Triton model repository from the templates in ``triton/model_repo``.

The templates carry ``${name}`` placeholders, as the official Spark-TTS runtime's do; filling is
``string.Template.safe_substitute`` with the official defaults (``max_queue_size`` and
``max_queue_delay_microseconds`` = 0) for placeholders no field fills. Our own default queue delay
is 2 ms, not 0: the gateway sends a request's next sentences to ``spark_tts`` at the same moment
(``rvc.processing.speech_waves``), and with no delay the batcher starts the first one alone the
instant it arrives (measured: 3 of 4 waves unbatched), while 2 ms is ~0.3% of a sentence's TTS.
Unlike the official ``fill_template.py``, the prepared repository is checked afterwards:
tritonserver runs with ``--disable-auto-complete-config``, so a placeholder left in a config would
only surface as a parse error at start-up.

Paths written into configs are absolute because the server runs in a neutral work directory.

One repository serves both contracts: ``spark_tts`` (offline, dynamic batching; decoupled only in
the legacy ``mode="streaming"``, the official runtime's layout) and, unless ``streaming_model`` is
False, ``spark_tts_decoupled``, the same template filled as a decoupled model with the same inputs.
Both are python-backend models, so each stub process loads its own copy of the LLM (the README
gives the measured cost); ``audio_tokenizer`` and ``vocoder`` are shared through BLS.

Instances sit where the official runtime puts them (``KIND_CPU``, the model choosing its device
from its ``device`` parameter) on the CPU and on one GPU. With ``gpu_count`` above 1 the codec and
``spark_tts`` models get ``KIND_GPU`` over every card (``rvc.device.instance_group``), and each
instance pins itself to the card Triton gives it (``sparktts.serving.instance_parameters``),
instead of all stacking on GPU 0. ``read_placements`` reads back, for /status, where each model of
a prepared repository runs and in which dtype.

The streaming model's default chunk schedule is chosen for RVC downstream: a small first chunk
(15 tokens = 0.3 s of audio, so conversion starts early) and steady 25-token chunks (0.4 s of new
audio each, the order of the RVC realtime block), overlapping by 5 tokens (1600 samples) which the
client cross-fades, as the official client does with its fixed 0.1 s. The official 50 -> 400 ->
1500 schedule stays available per request (``rvc.grpc.wire.ChunkPlan.official``).
"""

from __future__ import annotations

import json
import logging
import math
import re
import shutil
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from string import Template
from typing import Literal

from rvc.device import CODEC_DTYPE, PartPlacement, instance_group, kv_cache_tokens
from rvc.errors import ConfigError
from rvc.grpc import contract
from rvc.settings import PROJECT_ROOT

__all__ = [
    "TEMPLATE_DIR",
    "RepositoryConfig",
    "fill_template",
    "parse_substitutions",
    "prepare_model_repository",
    "read_placements",
    "unfilled_placeholders",
]

logger = logging.getLogger(__name__)

TEMPLATE_DIR = PROJECT_ROOT / "triton" / "model_repo"
MARKER_FILE = "repository.json"  # written last; also what lets a later run replace the folder
TEMPLATE_DEFAULTS = {"max_queue_size": 0, "max_queue_delay_microseconds": 0}
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_INSTANCE_GROUP = re.compile(r"^instance_group \[\n.*?^\]$", re.S | re.M)
_STRING_PARAMETER = re.compile(r'key:\s*"(device|dtype)"\s*,\s*value:\s*\{\s*string_value:\s*"([^"]*)"')
_GPU_LIST = re.compile(r"kind:\s*KIND_GPU.*?gpus:\s*\[([^\]]*)\]", re.S)
_MODEL_FOLDERS = ("BiCodec", "LLM", "wav2vec2-large-xlsr-53")
# Longest Spark-TTS prompt the KV pool must hold beside a full budget: 30 s of reference at 50 semantic
# tokens/s (1500), 32 global tokens, one sentence of text and the control tokens, rounded up.
TRTLLM_PROMPT_TOKENS = 2048

Mode = Literal["offline", "streaming"]
Device = Literal["cpu", "cuda"]
LLMBackend = Literal["python", "tensorrtllm", "onnxruntime"]


# ------------------------------------------------------------------------------------- template filling
def _split_unescaped(text: str, delimiter: str, maxsplit: int = -1) -> list[str]:
    """Split on ``delimiter`` where no backslash escapes it; escapes are kept for a later pass."""
    parts, start, index = [], 0, 0
    while index < len(text):
        if text[index] == "\\":
            index += 2
            continue
        if text[index] == delimiter and maxsplit != 0:
            parts.append(text[start:index])
            start = index + 1
            maxsplit -= 1
        index += 1
    parts.append(text[start:])
    return parts


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text, flags=re.S)


def parse_substitutions(spec: str) -> dict[str, str]:
    """``"a:1,b:x\\,y,c:d:e"`` -> ``{"a": "1", "b": "x,y", "c": "d:e"}`` (the official CLI's syntax).

    Items split on unescaped commas, keys end at the first unescaped colon (so values may hold
    colons); a backslash escapes the next character. ValueError for an item without a colon.
    """
    values: dict[str, str] = {}
    for item in _split_unescaped(spec, ","):
        if not item:
            continue
        pieces = _split_unescaped(item, ":", maxsplit=1)
        if len(pieces) != 2 or not pieces[0]:
            raise ValueError(f"substitution {item!r} is not key:value (escape ',' in values with a backslash)")
        values[_unescape(pieces[0])] = _unescape(pieces[1])
    return values


def fill_template(text: str, values: Mapping[str, object], *, require_known_keys: bool = True) -> str:
    """Substitute ``${key}`` placeholders; unknown placeholders stay literal (``safe_substitute``).

    With ``require_known_keys``, a key the template does not mention raises ValueError: a misspelt
    key would otherwise leave its placeholder unfilled without a word.
    """
    template = Template(text)
    if require_known_keys:
        present = set(_PLACEHOLDER.findall(text))
        unknown = sorted(set(values) - present)
        if unknown:
            raise ValueError(f"keys {unknown} do not occur in the template")
    return template.safe_substitute({**TEMPLATE_DEFAULTS, **{k: _pbtxt_value(v) for k, v in values.items()}})


def _tokens(seconds: float) -> int:
    """Seconds of 16 kHz audio -> semantic tokens, rounded up as the official runtime does."""
    return math.ceil(round(seconds * 50, 6))


def _pbtxt_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def unfilled_placeholders(text: str) -> list[str]:
    """The ``${name}`` placeholders still present in ``text``, in order of first appearance."""
    return list(dict.fromkeys(_PLACEHOLDER.findall(text)))


# ------------------------------------------------------------------------------------- repository config
@dataclass(frozen=True)
class RepositoryConfig:
    """Everything that varies between prepared repositories; validated on construction."""

    model_dir: Path  # a Spark-TTS-0.5B folder (BiCodec/, LLM/, wav2vec2-large-xlsr-53/)
    mode: Mode = "offline"
    device: Device = "cpu"
    # the python LLM's dtype (LLM_DTYPE): the service writes it resolved; "auto" lets each spark_tts
    # instance resolve it for its own card (sparktts.precision.llm_dtype); the codec stays float32
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "float32"
    llm_backend: LLMBackend = "python"
    # The python LLM's decode projections as GEMMs (sparktts.llm: float32, reordered sums, ~1.7x on
    # CPU); "auto" turns it on for device "cpu", "off" keeps the official summation order.
    llm_fast_matmul: Literal["auto", "on", "off"] = "auto"
    # python / onnxruntime LLM: score only the grammar's rows (sparktts.llm, sparktts.onnx_head); not exact
    llm_restrict_vocab: bool = False
    bls_instances: int = 1  # each spark_tts instance holds its own LLM (python backend)
    tokenizer_instances: int = 1
    vocoder_instances: int = 1
    max_batch_size: int = 16
    max_queue_delay_us: int = 2000  # lets a request's sentences, sent together, meet in one batch
    request_workers: int = 4  # requests one spark_tts instance runs at the same time (threads)
    # streaming with the python LLM: concurrent streams share one decode thread's steps (continuous
    # batching, sparktts.serving.stream_batcher.StreamBatcher); False decodes each stream in its request thread
    stream_batching: bool = True
    speaker_cache_size: int = 64  # reference clips whose tokens are kept; 0 disables the cache
    stream_end: Literal["empty_chunk", "last_chunk"] = "empty_chunk"
    temperature: float = 0.8
    top_k: int = 50
    top_p: float = 0.95
    max_new_tokens: int = 3000
    audio_chunk_duration: float = 1.0
    audio_chunk_size_scale_factor: float = 8.0
    max_audio_chunk_duration: float = 30.0
    audio_chunk_overlap_duration: float = 0.1
    # spark_tts_decoupled: written unless False; its default chunk schedule in semantic tokens
    streaming_model: bool = True
    stream_first_tokens: int = 15
    stream_steady_tokens: int = 25
    stream_chunk_scale: float = 2.0
    stream_overlap_tokens: int = 5
    trtllm_engine_dir: Path | None = None
    # llm_backend "onnxruntime": the LLM exported by sparktts.onnx_export (int8: the bake-off's pick;
    # fp32: the exact export), cached under llm_cache_dir (default: beside the repository, see
    # prepare_model_repository); llm_onnx_dir is what prepare_model_repository found or converted there
    llm_onnx_precision: Literal["int8", "fp32"] = "int8"
    llm_cache_dir: Path | None = None
    llm_onnx_dir: Path | None = None
    kv_cache_free_gpu_mem_fraction: float = 0.5
    # the engine's max_input_len (triton/run.sh TRTLLM_MAX_INPUT_LEN): the KV pool and the attention
    # window hold this much prompt beside max_new_tokens per row
    trtllm_prompt_tokens: int = TRTLLM_PROMPT_TOKENS
    gpu_count: int = 1  # visible GPUs; above 1 (device cuda) instances spread over them with KIND_GPU

    def __post_init__(self) -> None:
        choices = {
            "mode": ("offline", "streaming"),
            "device": ("cpu", "cuda"),
            "dtype": ("auto", "float32", "bfloat16", "float16"),
            "llm_backend": ("python", "tensorrtllm", "onnxruntime"),
            "llm_onnx_precision": ("int8", "fp32"),
            "llm_fast_matmul": ("auto", "on", "off"),
            "stream_end": ("empty_chunk", "last_chunk"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        for name in ("bls_instances", "tokenizer_instances", "vocoder_instances", "max_batch_size", "request_workers",
                     "trtllm_prompt_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("max_queue_delay_us", "speaker_cache_size", "gpu_count"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 < self.temperature or not 0 < self.top_p <= 1 or self.top_k < 0 or self.max_new_tokens < 1:
            raise ValueError(
                f"generation defaults out of range: temperature={self.temperature}, top_p={self.top_p}, "
                f"top_k={self.top_k}, max_new_tokens={self.max_new_tokens}"
            )
        # The official runtime's own limits for the streaming schedule.
        if self.audio_chunk_duration < 0.5:
            raise ValueError(f"audio_chunk_duration must be >= 0.5 s, got {self.audio_chunk_duration}")
        if self.audio_chunk_size_scale_factor < 1.0:
            raise ValueError(f"audio_chunk_size_scale_factor must be >= 1, got {self.audio_chunk_size_scale_factor}")
        if self.max_audio_chunk_duration < self.audio_chunk_duration:
            raise ValueError("max_audio_chunk_duration must be >= audio_chunk_duration")
        if not 0 <= self.audio_chunk_overlap_duration < self.audio_chunk_duration:
            raise ValueError(
                f"audio_chunk_overlap_duration must be in [0, audio_chunk_duration), got {self.audio_chunk_overlap_duration}"
            )
        if not 0 <= self.stream_overlap_tokens < self.stream_first_tokens <= self.stream_steady_tokens:
            raise ValueError(
                "streaming chunks need 0 <= stream_overlap_tokens < stream_first_tokens <= stream_steady_tokens, got "
                f"{self.stream_overlap_tokens}, {self.stream_first_tokens}, {self.stream_steady_tokens}"
            )
        if self.stream_chunk_scale < 1.0:
            raise ValueError(f"stream_chunk_scale must be >= 1, got {self.stream_chunk_scale}")
        if self.llm_backend == "tensorrtllm" and self.trtllm_engine_dir is None:
            raise ValueError("llm_backend='tensorrtllm' needs trtllm_engine_dir (built by triton/run.sh stage 1)")
        if self.llm_backend == "tensorrtllm" and self.llm_restrict_vocab:
            raise ValueError("llm_restrict_vocab needs llm_backend 'python' or 'onnxruntime'")

    @property
    def decoupled(self) -> bool:
        """Whether ``spark_tts`` itself is decoupled (the legacy streaming layout)."""
        return self.mode == "streaming"

    @property
    def llm_decoupled(self) -> bool:
        """Whether the ``tensorrt_llm`` model is decoupled: needed as soon as any model streams."""
        return self.decoupled or self.streaming_model

    def template_values(self) -> dict[str, dict[str, object]]:
        """The values for each model's template, keyed by model name."""
        model_dir = str(Path(self.model_dir).resolve())
        shared = {
            "triton_max_batch_size": self.max_batch_size,
            "max_queue_delay_microseconds": self.max_queue_delay_us,
            "model_dir": model_dir,
            "device": self.device,
            "dtype": CODEC_DTYPE,  # BiCodec and wav2vec2 stay float32; only the LLM takes self.dtype
        }
        spark = {
            "triton_max_batch_size": self.max_batch_size,
            "max_queue_delay_microseconds": self.max_queue_delay_us,
            "bls_instance_num": self.bls_instances,
            "llm_tokenizer_dir": str(Path(model_dir) / "LLM"),
            "llm_backend": self.llm_backend,
            "llm_decoupled": self.llm_decoupled,
            "llm_fast_matmul": self.llm_fast_matmul,
            "llm_restrict_vocab": self.llm_restrict_vocab,
            "llm_onnx_dir": "" if self.llm_onnx_dir is None else str(Path(self.llm_onnx_dir).resolve()),
            "device": self.device,
            "dtype": self.dtype,
            "request_workers": self.request_workers,
            "stream_batching": self.stream_batching,
            "speaker_cache_size": self.speaker_cache_size,
            "stream_end": self.stream_end,
            "temperature": self.temperature,
            "top_k": self.top_k,
            "top_p": self.top_p,
            "max_new_tokens": self.max_new_tokens,
        }
        values: dict[str, dict[str, object]] = {
            contract.AUDIO_TOKENIZER: {**shared, "tokenizer_instance_num": self.tokenizer_instances},
            contract.VOCODER: {**shared, "vocoder_instance_num": self.vocoder_instances},
            contract.SPARK_TTS: {
                **spark,
                "model_name": contract.SPARK_TTS,
                "decoupled_mode": self.decoupled,
                # the legacy streaming spark_tts keeps the official schedule, converted as upstream
                "chunk_first_tokens": _tokens(self.audio_chunk_duration),
                "chunk_steady_tokens": _tokens(self.max_audio_chunk_duration),
                "chunk_scale": self.audio_chunk_size_scale_factor,
                "chunk_overlap_tokens": _tokens(self.audio_chunk_overlap_duration),
            },
        }
        if self.streaming_model:
            values[contract.SPARK_TTS_DECOUPLED] = {
                **spark,
                "model_name": contract.SPARK_TTS_DECOUPLED,
                "decoupled_mode": True,
                "chunk_first_tokens": self.stream_first_tokens,
                "chunk_steady_tokens": self.stream_steady_tokens,
                "chunk_scale": self.stream_chunk_scale,
                "chunk_overlap_tokens": self.stream_overlap_tokens,
            }
        if self.llm_backend == "tensorrtllm":
            assert self.trtllm_engine_dir is not None
            values[contract.TENSORRT_LLM] = {
                "triton_backend": "tensorrtllm",
                "triton_max_batch_size": self.max_batch_size,
                "max_queue_delay_microseconds": self.max_queue_delay_us,
                "decoupled_mode": self.llm_decoupled,
                "max_beam_width": 1,
                "engine_dir": str(Path(self.trtllm_engine_dir).resolve()),
                "max_tokens_in_paged_kv_cache": kv_cache_tokens(
                    self.max_batch_size, self.trtllm_prompt_tokens, self.max_new_tokens
                ),
                "max_attention_window_size": self.trtllm_prompt_tokens + self.max_new_tokens,
                "kv_cache_free_gpu_mem_fraction": self.kv_cache_free_gpu_mem_fraction,
                "exclude_input_in_output": True,
                "enable_kv_cache_reuse": False,
                "batching_strategy": "inflight_fused_batching",
            }
        return values

    def instance_groups(self) -> dict[str, str]:
        """The ``instance_group`` of each python-backend model (the TensorRT-LLM backend places its
        engine itself and keeps the template's)."""
        counts = {
            contract.AUDIO_TOKENIZER: self.tokenizer_instances,
            contract.VOCODER: self.vocoder_instances,
            contract.SPARK_TTS: self.bls_instances,
            contract.SPARK_TTS_DECOUPLED: self.bls_instances,
        }
        return {model: instance_group(self.device, self.gpu_count, count) for model, count in counts.items()}


# ------------------------------------------------------------------------------------- preparation
def prepare_model_repository(
    output_dir: str | Path,
    *,
    model_dir: str | Path,
    mode: Mode = "offline",
    device: Device = "cpu",
    llm_backend: LLMBackend = "python",
    template_dir: str | Path | None = None,
    **options: object,
) -> Path:
    """Write a filled model repository to ``output_dir`` and return its absolute path.

    ``options`` are further ``RepositoryConfig`` fields (instance counts, batch size, cache size,
    generation defaults, chunking, ``trtllm_engine_dir``). ``output_dir`` must be absent, empty, or a
    repository this function prepared before (it is then replaced). Raises ConfigError when the model
    folder or the templates are unusable, ValueError for out-of-range options.

    With ``llm_backend="onnxruntime"`` the LLM is exported here, once per checkpoint (a hash of the
    ``LLM/`` folder keys the cache, ``sparktts.onnx_export``), into ``llm_cache_dir`` or else
    ``<output_dir>.llm_cache`` beside the repository (not inside: Triton would take its folders for
    models, and a later preparation replaces the repository but keeps the cache).
    """
    config = RepositoryConfig(
        model_dir=Path(model_dir), mode=mode, device=device, llm_backend=llm_backend, **options  # type: ignore[arg-type]
    )
    templates = Path(template_dir) if template_dir is not None else TEMPLATE_DIR
    _check_model_dir(Path(config.model_dir))
    output = Path(output_dir).resolve()
    if config.llm_backend == "onnxruntime":
        config = replace(config, llm_onnx_dir=_export_onnx_llm(config, output))
    _clear_output(output)
    output.mkdir(parents=True)
    groups = config.instance_groups()
    for model, values in config.template_values().items():
        source = templates / (contract.SPARK_TTS if model == contract.SPARK_TTS_DECOUPLED else model)
        if not (source / "config.pbtxt").is_file():
            raise ConfigError(f"model template {source}/config.pbtxt is missing")
        shutil.copytree(source, output / model, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        config_path = output / model / "config.pbtxt"
        filled = fill_template(config_path.read_text(), values)
        if model in groups and config.device == "cuda" and config.gpu_count > 1:
            filled, replaced = _INSTANCE_GROUP.subn(groups[model], filled)
            if replaced != 1:
                raise ConfigError(f"{model}/config.pbtxt: expected one instance_group block, found {replaced}")
        left = unfilled_placeholders(filled)
        if left:
            raise ConfigError(f"{model}/config.pbtxt still has placeholders {left} after filling")
        config_path.write_text(filled)
    record = {key: str(value) if isinstance(value, Path) else value for key, value in asdict(config).items()}
    (output / MARKER_FILE).write_text(json.dumps(record, indent=2) + "\n")
    logger.info("prepared %s model repository at %s (llm backend %s, device %s)", mode, output, llm_backend, device)
    return output


def _export_onnx_llm(config: RepositoryConfig, output: Path) -> Path:
    from sparktts.onnx_export import OnnxExportError, export_llm  # torch-free; only this backend needs it

    cache = config.llm_cache_dir if config.llm_cache_dir is not None else output.with_name(f"{output.name}.llm_cache")
    try:
        return export_llm(Path(config.model_dir) / "LLM", cache, config.llm_onnx_precision)
    except (OnnxExportError, OSError) as exc:
        raise ConfigError(f"cannot export the Spark LLM for llm_backend=onnxruntime: {exc}") from exc


def read_placements(repository: Path) -> tuple[PartPlacement, ...]:
    """Where each model of a prepared repository runs, and in which dtype, as its config.pbtxt says
    (what tritonserver loaded, not what the settings asked): parts ``triton.<model>``. Instances
    spread with KIND_GPU read as ``cuda:0,1``; the TensorRT-LLM engine runs on CUDA in the dtype
    the repository was prepared with. Empty when ``repository`` holds no prepared repository
    (tritonserver started elsewhere).
    """
    marker = repository / MARKER_FILE
    try:
        record = json.loads(marker.read_text())
    except (OSError, ValueError):
        return ()
    parts = []
    for config_path in sorted(repository.glob("*/config.pbtxt")):
        try:
            text = config_path.read_text()
        except OSError:
            continue
        parameters = dict(_STRING_PARAMETER.findall(text))
        device, dtype = parameters.get("device"), parameters.get("dtype")
        if device is None:  # tensorrt_llm: no python model, the engine's own placement
            device, dtype = "cuda", str(record.get("dtype"))
        gpus = _GPU_LIST.search(text)
        if device == "cuda" and gpus is not None:
            device = "cuda:" + ",".join(index.strip() for index in gpus.group(1).split(","))
        parts.append(PartPlacement(f"triton.{config_path.parent.name}", device, dtype))
    return tuple(parts)


def _check_model_dir(model_dir: Path) -> None:
    missing = [name for name in _MODEL_FOLDERS if not (model_dir / name).is_dir()]
    if missing:
        raise ConfigError(f"Spark-TTS model folder {model_dir} lacks {missing} (run triton/run.sh stage 0)")


def _clear_output(output: Path) -> None:
    if not output.exists():
        return
    if not output.is_dir():
        raise ConfigError(f"{output} exists and is not a folder")
    if any(output.iterdir()) and not (output / MARKER_FILE).is_file():
        raise ConfigError(f"{output} is not empty and was not prepared by prepare_model_repository; refusing to replace it")
    shutil.rmtree(output)
