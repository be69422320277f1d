"""Triton adapter: Spark-TTS voice cloning and voice design, orchestrated with BLS.

reference clip --BLS--> audio_tokenizer --> prompt --> LLM --> semantic tokens --BLS--> vocoder.
Instead of the clip a request may send stored speaker tokens (no tokenizer call) or voice
attributes (``gender``, ``pitch``, ``speed_level``: the LLM designs the voice); offline responses
also carry the ``global_tokens`` the speech was vocoded with, for a client that asks for them.

The flow itself is ``sparktts.serving.SpeechPipeline``; this file supplies its parts (BLS calls,
the LLM) and turns its results into responses. The LLM runs in this process through
``sparktts.llm.SparkLM`` (``llm_backend=python``), through ONNX Runtime from the export in
``llm_onnx_dir`` (``llm_backend=onnxruntime``, ``sparktts.llm_onnx``: the engine's logits, every row
of a step in one run, our sampling), or as BLS calls to the ``tensorrt_llm`` model (``llm_backend=tensorrtllm``); the outer
contract is the same.

Offline (``decoupled: false``): one response per request with the whole ``waveform`` (1, T); the
prompts of a dynamic batch are decoded together. Streaming (``decoupled: true``): each request
runs in a worker thread (its LLM ids come from one decode thread that steps every concurrent
stream together, ``sparktts.serving.stream_batcher.StreamBatcher``, unless ``stream_batching`` is false) and sends a ``waveform`` chunk whenever enough tokens exist, on the
request's chunk schedule (``chunk_*`` inputs) or the model's (``chunk_*`` parameters: the official
50 -> 400 -> 1500 tokens for a streaming ``spark_tts``, a small first chunk and steady chunks for
``spark_tts_decoupled``), chunks overlapping by 5 tokens = 1600 samples by default. The stream ends
with a response carrying the FINAL flag: by default an extra response with an empty waveform
(``stream_end=empty_chunk``), which both the official client (it stops reading at the FINAL flag)
and asyncio clients (they never see a FINAL-only response) handle; ``stream_end=last_chunk`` puts
the flag on the last audio chunk instead. Errors become error responses (with FINAL when
streaming); a cancelled request stops between chunks.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
import triton_python_backend_utils as pb_utils

from sparktts import serving
from sparktts.generation import GenerationParams

if TYPE_CHECKING:
    from sparktts.serving.stream_batcher import StreamBatcher

FINAL = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL

error_response = partial(serving.error_response, pb_utils)
waveform_response = partial(serving.waveform_response, pb_utils)
speech_response = partial(serving.speech_response, pb_utils)


def bls(model: str, outputs: list[str], inputs: dict[str, np.ndarray]) -> pb_utils.InferenceResponse:
    request = pb_utils.InferenceRequest(
        model_name=model,
        requested_output_names=outputs,
        inputs=[pb_utils.Tensor(name, value) for name, value in inputs.items()],
    )
    response = request.exec()
    if response.has_error():
        raise RuntimeError(f"{model}: {response.error().message()}")
    return response


def output(response: pb_utils.InferenceResponse, name: str) -> np.ndarray:
    return pb_utils.get_output_tensor_by_name(response, name).as_numpy()


def tensorrt_llm_request(inputs: dict[str, np.ndarray], decoupled: bool) -> Iterator[dict[str, np.ndarray]]:
    """``sparktts.serving.RequestExecutor`` over BLS: one request to the ``tensorrt_llm`` model."""
    request = pb_utils.InferenceRequest(
        model_name="tensorrt_llm",
        requested_output_names=["output_ids", "sequence_length"],
        inputs=[pb_utils.Tensor(name, value) for name, value in inputs.items()],
    )
    responses = request.exec(decoupled=True) if decoupled else [request.exec()]
    for response in responses:
        if response.has_error():
            raise RuntimeError(f"tensorrt_llm: {response.error().message()}")
        if response.output_tensors():  # a decoupled stream ends with an empty final response
            yield {name: output(response, name) for name in ("output_ids", "sequence_length")}


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        serving.start_adapter(pb_utils)
        model_config = json.loads(args["model_config"])
        parameters = serving.instance_parameters(serving.model_parameters(model_config), args)
        self.decoupled = pb_utils.using_decoupled_model_transaction_policy(model_config)
        self.stream_end = parameters.get("stream_end", "empty_chunk")
        if self.stream_end not in ("empty_chunk", "last_chunk"):
            raise ValueError(f"stream_end must be empty_chunk or last_chunk, got {self.stream_end!r}")
        self.defaults = GenerationParams(
            temperature=float(parameters.get("temperature", "0.8")),
            top_k=int(parameters.get("top_k", "50")),
            top_p=float(parameters.get("top_p", "0.95")),
            max_new_tokens=int(parameters.get("max_new_tokens", "3000")),
            restrict_vocab=parameters.get("llm_restrict_vocab", "false") == "true",
        )
        schedule = serving.schedule_from_parameters(parameters)
        workers = int(parameters.get("request_workers", "4"))
        self.batcher: StreamBatcher | None = None
        llm_dir = serving.required_parameter(parameters, "llm_tokenizer_dir")
        backend = parameters.get("llm_backend", "python")
        if backend == "python":
            generate, stream, semantic_ids, semantic_index = self._python_llm(llm_dir, parameters)
            global_ids, global_index = self.llm.global_ids, self.llm.global_index
        elif backend == "onnxruntime":
            generate, stream, semantic_ids, semantic_index = self._onnx_llm(llm_dir, parameters)
            global_ids, global_index = self.llm.global_ids, self.llm.global_index
        elif backend == "tensorrtllm":
            self.llm = serving.TensorRTLLM.from_pretrained(
                llm_dir, tensorrt_llm_request, decoupled=parameters.get("llm_decoupled") == "true", workers=workers
            )
            generate, stream = self.llm.generate, self.llm.stream
            semantic_ids, semantic_index = self.llm.semantic_ids, self.llm.semantic_index
            global_ids, global_index = self.llm.global_ids, self.llm.global_index
        else:
            raise ValueError(f"llm_backend must be python, onnxruntime or tensorrtllm, got {backend!r}")
        # The cache's numbers go to Triton's /metrics (sparktts.serving.cache_metrics says why there).
        self.cache_metrics = serving.CacheMetricsPublisher(
            pb_utils, {"model": model_config["name"], "instance": str(args.get("model_instance_name", ""))}
        )
        cache = serving.SpeakerCache(
            int(parameters.get("speaker_cache_size", "0")), on_change=self.cache_metrics.notify
        )
        self.pipeline = serving.SpeechPipeline(
            tokenize=self._tokenize,
            generate=generate,
            stream=stream,
            semantic_ids=semantic_ids,
            semantic_index=semantic_index,
            vocode=self._vocode,
            cache=cache,
            schedule=schedule,
            workers=workers,
            global_ids=global_ids,
            global_index=global_index,
        )
        self.requests = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="spark-stream")
        self.cache_metrics.watch(cache)
        pb_utils.Logger.log_info(
            f"{model_config['name']}: llm {backend} from {llm_dir}, {'streaming' if self.decoupled else 'offline'}, "
            f"{schedule}, cache {self.pipeline.cache.capacity}, stream_end {self.stream_end}, "
            f"stream batching {'on' if self.batcher is not None else 'off'}, "
            f"restrict_vocab {'on' if self.defaults.restrict_vocab else 'off'}"
        )

    # ------------------------------------------------------------------ the pipeline's parts
    def _python_llm(self, llm_dir: str, parameters: dict[str, str]):
        from sparktts.llm import SparkLM  # here, not at the top: the tensorrtllm backend needs no torch LLM
        from sparktts.serving.stream_batcher import StreamBatcher

        device, dtype = serving.llm_placement(parameters)  # LLM_DTYPE for this card; TF32 to match
        fast_matmul = {"auto": None, "on": True, "off": False}[parameters.get("llm_fast_matmul", "auto")]
        self.llm = SparkLM.from_pretrained(llm_dir, device=device, dtype=dtype, fast_matmul=fast_matmul)
        stream = self.llm.stream
        if self.decoupled and serving.stream_batching_enabled(parameters):
            self.batcher = StreamBatcher(self.llm)
            stream = self.batcher.stream
        return self.llm.generate_batch, stream, self.llm.semantic_ids, self.llm.semantic_index

    def _onnx_llm(self, llm_dir: str, parameters: dict[str, str]):
        from sparktts.llm_onnx import OnnxBatch, OnnxSparkLM, threads_for_the_engine
        from sparktts.serving.stream_batcher import StreamBatcher

        # the engine gets the threads torch has here (the launcher's OMP_NUM_THREADS); torch keeps one
        lm = OnnxSparkLM.from_pretrained(
            llm_dir, serving.required_parameter(parameters, "llm_onnx_dir"), threads=threads_for_the_engine()
        )
        self.llm = lm
        stream = lm.stream
        if self.decoupled and serving.stream_batching_enabled(parameters):
            self.batcher = StreamBatcher(lm, new_batch=lambda restrict: OnnxBatch(lm, restrict_vocab=restrict))
            stream = self.batcher.stream
        return lm.generate_batch, stream, lm.semantic_ids, lm.semantic_index

    def _tokenize(self, wav: np.ndarray, sample_rate: int) -> serving.Tokens:
        response = bls(
            "audio_tokenizer",
            ["global_tokens", "semantic_tokens"],
            {
                "reference_wav": wav.reshape(1, -1).astype(np.float32),
                "reference_wav_len": np.array([[wav.shape[0]]], dtype=np.int32),
                "reference_sample_rate": np.array([[sample_rate]], dtype=np.int32),
            },
        )
        return output(response, "global_tokens").reshape(-1), output(response, "semantic_tokens").reshape(-1)

    def _vocode(self, global_tokens: np.ndarray, semantic_tokens: np.ndarray) -> np.ndarray:
        response = bls(
            "vocoder",
            ["waveform"],
            {"global_tokens": serving.token_row(global_tokens), "semantic_tokens": serving.token_row(semantic_tokens)},
        )
        return output(response, "waveform").reshape(-1)

    # ------------------------------------------------------------------ requests
    def _parse(self, request) -> serving.SynthesisRequest:
        def get(name: str) -> np.ndarray | None:
            tensor = pb_utils.get_input_tensor_by_name(request, name)
            return None if tensor is None else tensor.as_numpy()

        return serving.parse_synthesis_request(get, self.defaults, request.request_id(), self.pipeline.schedule)

    def _parse_waiting(self, request) -> serving.SynthesisRequest:
        if request.is_cancelled():  # the client gave up while the request was queued
            raise serving.RequestCancelled(request.request_id())
        return self._parse(request)

    def execute(self, requests: list) -> list | None:
        if self.decoupled:
            for request in requests:
                self.requests.submit(self._stream, request)
            return None
        responses = serving.answer_batch(
            requests, self._parse_waiting, self.pipeline.synthesize_batch, speech_response, error_response
        )
        for request, response in zip(requests, responses, strict=True):
            if response.has_error():
                pb_utils.Logger.log_warn(f"[{request.request_id()}] failed: {response.error().message()}")
        serving.release_freed_memory()
        return responses

    def _stream(self, request) -> None:
        sender = request.get_response_sender()
        request_id = request.request_id()
        sent = 0
        try:
            synthesis = self._parse(request)
            for chunk, is_last in self.pipeline.stream_chunks(synthesis, request.is_cancelled):
                final = is_last and self.stream_end == "last_chunk"
                sender.send(waveform_response(chunk), flags=FINAL if final else 0)
                sent += 1
                if final:
                    pb_utils.Logger.log_info(f"[{request_id}] streamed {sent} chunks")
                    return
            if request.is_cancelled():
                pb_utils.Logger.log_info(f"[{request_id}] cancelled after {sent} chunks")
                sender.send(error_response(serving.RequestCancelled(request_id)), flags=FINAL)
                return
            sender.send(waveform_response(np.zeros(0, np.float32)), flags=FINAL)
            pb_utils.Logger.log_info(f"[{request_id}] streamed {sent} chunks")
        except Exception as exc:  # noqa: BLE001 - every failure must still end the stream
            pb_utils.Logger.log_warn(f"[{request_id}] failed after {sent} chunks: {exc}")
            sender.send(error_response(exc), flags=FINAL)
        finally:
            serving.release_freed_memory()  # after the last response: costs the client nothing

    def finalize(self) -> None:
        self.requests.shutdown(wait=False, cancel_futures=True)
        self.pipeline.close()
        if self.batcher is not None:
            self.batcher.close()
        self.cache_metrics.close()
        if isinstance(self.llm, serving.TensorRTLLM):
            self.llm.close()
