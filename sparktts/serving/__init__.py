"""Serving logic for the Triton models, as plain functions and classes that tests call without Triton.

Each ``triton/model_repo/<model>/1/model.py`` is a thin adapter: it turns ``pb_utils`` tensors into
numpy arrays, calls into this package and wraps the results into responses. Nothing here imports
Triton, so the whole request path (parsing, the speaker-token cache, the streaming chunk schedule,
the tokenize -> prompt -> LLM -> vocode flow) runs in-process in tests, with the same functions
the server uses.

* ``inputs``: model parameters, input parsing and validation, error descriptions, log forwarding;
* ``placement``: each model's device and dtype (the LLM's rule, the codec's float32, TF32);
* ``codec``: BiCodec tokenize / detokenize over a dynamic batch;
* ``pipeline``: ``SpeakerCache`` and ``SpeechPipeline`` (offline batches and streamed chunks);
* ``cache_metrics``: the speaker cache's numbers as Triton custom metrics;
* ``stream_batcher``: ``StreamBatcher``, concurrent streams decoded together by one thread. Not
  re-exported here: it needs the python LLM (transformers), and importing this package must not, since
  the vocoder and audio tokenizer stubs import it at every tritonserver start (``sparktts.generation``
  says what that costs); import it from ``sparktts.serving.stream_batcher``;
* ``trtllm``: the TensorRT-LLM backend (``TensorRTLLM``: request tensors, token parsing);
* ``responses``: the Triton responses every adapter builds (``pb_utils`` passed in).
"""

from __future__ import annotations

from sparktts.serving.cache_metrics import CacheMetricsPublisher
from sparktts.serving.codec import Tokens, check_tokens, load_codec, tokenize_references, vocode_batch
from sparktts.serving.inputs import (
    INVALID_INPUT_PREFIX,
    RequestCancelled,
    SynthesisRequest,
    TensorGetter,
    VoiceStyle,
    answer_batch,
    decode_text,
    describe_error,
    forward_logging,
    model_parameters,
    parse_reference,
    parse_schedule,
    parse_synthesis_request,
    required_parameter,
    schedule_from_parameters,
    stream_batching_enabled,
    token_row,
    waveform_row,
)
from sparktts.serving.memory import bound_primitive_cache, release_freed_memory
from sparktts.serving.pipeline import CacheStats, SpeakerCache, Speech, SpeechPipeline
from sparktts.serving.placement import codec_placement, instance_parameters, llm_placement, torch_device
from sparktts.serving.responses import error_response, speech_response, start_adapter, waveform_response
from sparktts.serving.trtllm import (
    RequestExecutor,
    TensorRTLLM,
    generated_ids,
    semantic_lookup,
    tensorrt_llm_inputs,
    tokenizer_semantic_ids,
)

__all__ = [
    "bound_primitive_cache",
    "release_freed_memory",
    "INVALID_INPUT_PREFIX",
    "RequestCancelled",
    "RequestExecutor",
    "CacheMetricsPublisher",
    "CacheStats",
    "SpeakerCache",
    "Speech",
    "SpeechPipeline",
    "SynthesisRequest",
    "TensorGetter",
    "TensorRTLLM",
    "Tokens",
    "VoiceStyle",
    "answer_batch",
    "check_tokens",
    "decode_text",
    "describe_error",
    "error_response",
    "forward_logging",
    "generated_ids",
    "instance_parameters",
    "llm_placement",
    "codec_placement",
    "torch_device",
    "load_codec",
    "model_parameters",
    "parse_reference",
    "parse_schedule",
    "parse_synthesis_request",
    "required_parameter",
    "schedule_from_parameters",
    "semantic_lookup",
    "speech_response",
    "stream_batching_enabled",
    "start_adapter",
    "tensorrt_llm_inputs",
    "token_row",
    "tokenize_references",
    "tokenizer_semantic_ids",
    "vocode_batch",
    "waveform_response",
    "waveform_row",
]
