"""The wire contract of the Spark-TTS model repository: model, tensor and parameter names with dtypes.

The official Spark-TTS Triton runtime (``runtime/triton_trtllm``) fixes the first four ``spark_tts``
inputs and the ``waveform`` output; its clients send ``reference_wav`` as FP32 ``[1, N]`` (zero-padded),
``reference_wav_len`` as INT32 ``[[N]]`` and both texts as BYTES ``[1, 1]``. Everything marked
*extension* is optional on the wire, so those clients work unchanged. The shapes below are per batch
item: every model has ``max_batch_size > 0``, so a request carries a leading batch dimension of 1.

The config templates in ``triton/model_repo`` and this module must agree; a test reads both.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "AUDIO_TOKENIZER",
    "AUDIO_TOKENIZER_INPUTS",
    "AUDIO_TOKENIZER_OUTPUTS",
    "CHUNK_FIRST_TOKENS",
    "CHUNK_OVERLAP_TOKENS",
    "CHUNK_SCALE",
    "CHUNK_STEADY_TOKENS",
    "GENDER",
    "GLOBAL_TOKENS",
    "INVALID_INPUT_PREFIX",
    "MAX_NEW_TOKENS",
    "MODEL_TENSORS",
    "PITCH",
    "REFERENCE_SAMPLE_RATE",
    "REFERENCE_TEXT",
    "REFERENCE_WAV",
    "REFERENCE_WAV_LEN",
    "SAMPLE_RATE",
    "SEED",
    "SEMANTIC_TOKENS",
    "SPEAKER_GLOBAL_TOKENS",
    "SPEAKER_SEMANTIC_TOKENS",
    "SPEED_LEVEL",
    "SPARK_TTS",
    "SPARK_TTS_INPUTS",
    "SPARK_TTS_OUTPUTS",
    "SPARK_TTS_DECOUPLED",
    "TARGET_TEXT",
    "TEMPERATURE",
    "TENSORRT_LLM",
    "TOP_K",
    "TOP_P",
    "VOCODER",
    "VOCODER_INPUTS",
    "VOCODER_OUTPUTS",
    "WAVEFORM",
    "TensorSpec",
]

SAMPLE_RATE = 16000  # every waveform on the wire, in and out, unless reference_sample_rate says otherwise

# ---- models -------------------------------------------------------------------------------------------
SPARK_TTS = "spark_tts"  # BLS orchestrator: the one the service and the official clients call
# The same model, decoupled: audio chunks while the LLM generates. The name is the official runtime's
# streaming model's: client_grpc.py accepts only f5_tts, spark_tts and spark_tts_decoupled as
# --model-name, so `--mode streaming --model-name spark_tts_decoupled` works against it unchanged.
SPARK_TTS_DECOUPLED = "spark_tts_decoupled"
AUDIO_TOKENIZER = "audio_tokenizer"
VOCODER = "vocoder"
TENSORRT_LLM = "tensorrt_llm"  # only in repositories prepared with llm_backend="tensorrtllm"

# ---- tensor names ---------------------------------------------------------------------------------------
REFERENCE_WAV = "reference_wav"
REFERENCE_WAV_LEN = "reference_wav_len"
REFERENCE_TEXT = "reference_text"
TARGET_TEXT = "target_text"
WAVEFORM = "waveform"
GLOBAL_TOKENS = "global_tokens"
SEMANTIC_TOKENS = "semantic_tokens"
# extensions
REFERENCE_SAMPLE_RATE = "reference_sample_rate"
SEED = "seed"
TEMPERATURE = "temperature"
TOP_K = "top_k"
TOP_P = "top_p"
MAX_NEW_TOKENS = "max_new_tokens"
# extensions: who speaks, instead of the reference clip (one source per request)
GENDER = "gender"
PITCH = "pitch"
SPEED_LEVEL = "speed_level"
SPEAKER_GLOBAL_TOKENS = "speaker_global_tokens"
SPEAKER_SEMANTIC_TOKENS = "speaker_semantic_tokens"
# extensions, streaming only: the request's chunk schedule in semantic tokens (50 per second)
CHUNK_FIRST_TOKENS = "chunk_first_tokens"
CHUNK_STEADY_TOKENS = "chunk_steady_tokens"
CHUNK_SCALE = "chunk_scale"
CHUNK_OVERLAP_TOKENS = "chunk_overlap_tokens"

# Server-side validation errors start with this, so a client can tell "your request is wrong" from
# "the backend failed" even on a gRPC stream, whose error responses carry no status code.
INVALID_INPUT_PREFIX = "invalid input: "


@dataclass(frozen=True)
class TensorSpec:
    """One input or output: ``dims`` exclude the batch dimension, as in config.pbtxt."""

    name: str
    datatype: str  # the protocol's name: FP32, INT32, INT64, BYTES
    dims: tuple[int, ...]
    optional: bool = False

    @property
    def config_type(self) -> str:
        """The ``data_type`` spelling of config.pbtxt (BYTES is TYPE_STRING there)."""
        return "TYPE_STRING" if self.datatype == "BYTES" else f"TYPE_{self.datatype}"


SPARK_TTS_INPUTS: tuple[TensorSpec, ...] = (
    # Optional to Triton since stored speaker tokens or voice attributes may replace the clip; the model
    # still requires both when neither is sent, so the official clients see no change.
    TensorSpec(REFERENCE_WAV, "FP32", (-1,), optional=True),
    TensorSpec(REFERENCE_WAV_LEN, "INT32", (1,), optional=True),
    # Optional here although the official config requires it: absent means "no transcript", and the
    # prompt then leaves out the reference's semantic tokens (SparkTTS with prompt_text=None).
    TensorSpec(REFERENCE_TEXT, "BYTES", (1,), optional=True),
    TensorSpec(TARGET_TEXT, "BYTES", (1,)),
    TensorSpec(REFERENCE_SAMPLE_RATE, "INT32", (1,), optional=True),
    TensorSpec(SEED, "INT64", (1,), optional=True),
    TensorSpec(TEMPERATURE, "FP32", (1,), optional=True),
    TensorSpec(TOP_K, "INT32", (1,), optional=True),
    TensorSpec(TOP_P, "FP32", (1,), optional=True),
    TensorSpec(MAX_NEW_TOKENS, "INT32", (1,), optional=True),
    TensorSpec(CHUNK_FIRST_TOKENS, "INT32", (1,), optional=True),
    TensorSpec(CHUNK_STEADY_TOKENS, "INT32", (1,), optional=True),
    TensorSpec(CHUNK_SCALE, "FP32", (1,), optional=True),
    TensorSpec(CHUNK_OVERLAP_TOKENS, "INT32", (1,), optional=True),
    TensorSpec(GENDER, "BYTES", (1,), optional=True),
    TensorSpec(PITCH, "BYTES", (1,), optional=True),
    TensorSpec(SPEED_LEVEL, "BYTES", (1,), optional=True),
    TensorSpec(SPEAKER_GLOBAL_TOKENS, "INT32", (-1,), optional=True),
    TensorSpec(SPEAKER_SEMANTIC_TOKENS, "INT32", (-1,), optional=True),
)
# global_tokens: the voice the waveform was vocoded with (designed, stored or the clip's); offline only
SPARK_TTS_OUTPUTS: tuple[TensorSpec, ...] = (TensorSpec(WAVEFORM, "FP32", (-1,)), TensorSpec(GLOBAL_TOKENS, "INT32", (-1,)))

AUDIO_TOKENIZER_INPUTS: tuple[TensorSpec, ...] = (
    TensorSpec(REFERENCE_WAV, "FP32", (-1,)),
    TensorSpec(REFERENCE_WAV_LEN, "INT32", (1,)),
    TensorSpec(REFERENCE_SAMPLE_RATE, "INT32", (1,), optional=True),
)
AUDIO_TOKENIZER_OUTPUTS: tuple[TensorSpec, ...] = (
    TensorSpec(GLOBAL_TOKENS, "INT32", (-1,)),
    TensorSpec(SEMANTIC_TOKENS, "INT32", (-1,)),
)

VOCODER_INPUTS: tuple[TensorSpec, ...] = (
    TensorSpec(GLOBAL_TOKENS, "INT32", (-1,)),
    TensorSpec(SEMANTIC_TOKENS, "INT32", (-1,)),
)
VOCODER_OUTPUTS: tuple[TensorSpec, ...] = (TensorSpec(WAVEFORM, "FP32", (-1,)),)

MODEL_TENSORS: dict[str, tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]] = {
    SPARK_TTS: (SPARK_TTS_INPUTS, SPARK_TTS_OUTPUTS),
    SPARK_TTS_DECOUPLED: (SPARK_TTS_INPUTS, SPARK_TTS_OUTPUTS),
    AUDIO_TOKENIZER: (AUDIO_TOKENIZER_INPUTS, AUDIO_TOKENIZER_OUTPUTS),
    VOCODER: (VOCODER_INPUTS, VOCODER_OUTPUTS),
}
