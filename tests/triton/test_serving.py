"""The serving logic the Triton models run, called in-process (no server): request parsing, the
speaker cache, vocoder batching and the whole pipeline against the in-process SparkTTS."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import numpy as np
import pytest

from rvc.grpc.client import join_chunks
from sparktts import serving
from sparktts.llm import GenerationParams
from sparktts.streaming import ChunkSchedule, crossfade_join
from tests.triton.conftest import MAX_NEW_TOKENS, TEXT, Reference

DEFAULTS = GenerationParams(max_new_tokens=MAX_NEW_TOKENS)


def official_inputs(wav: np.ndarray, text: str, reference_text: str | None = "", pad_to: int = 0) -> dict:
    """Tensors shaped as the official gRPC client sends them (zero-padded clip, true length)."""
    samples = np.zeros((1, max(pad_to, wav.size)), np.float32)
    samples[0, : wav.size] = wav
    inputs = {
        "reference_wav": samples,
        "reference_wav_len": np.array([[wav.size]], np.int32),
        "target_text": np.array([[text.encode()]], dtype=object),
    }
    if reference_text is not None:
        inputs["reference_text"] = np.array([[reference_text.encode()]], dtype=object)
    return inputs


def in_process_pipeline(tts, counts: Counter, cache_size: int = 4) -> serving.SpeechPipeline:
    def tokenize(wav: np.ndarray, rate: int) -> serving.Tokens:
        counts["tokenize"] += 1
        return serving.tokenize_references(tts.audio_tokenizer, [(wav, rate)])[0]

    def vocode(global_tokens: np.ndarray, semantic: np.ndarray) -> np.ndarray:
        return serving.vocode_batch(tts.audio_tokenizer, [(global_tokens, semantic)])[0]

    return serving.SpeechPipeline(
        tokenize=tokenize, generate=tts.lm.generate_batch, stream=tts.lm.stream, semantic_ids=tts.lm.semantic_ids,
        semantic_index=tts.lm.semantic_index, vocode=vocode, cache=serving.SpeakerCache(cache_size), workers=2,
        global_ids=tts.lm.global_ids, global_index=tts.lm.global_index,
    )


def test_request_parsing_drops_the_clients_padding(reference: Reference) -> None:
    inputs = official_inputs(reference.wav, TEXT, reference.text, pad_to=reference.wav.size + 16000)
    inputs["reference_sample_rate"] = np.array([[reference.sample_rate]], np.int32)
    inputs["seed"] = np.array([[7]], np.int64)
    inputs["top_k"] = np.array([[20]], np.int32)
    request = serving.parse_synthesis_request(inputs.get, DEFAULTS, "r1")
    np.testing.assert_array_equal(request.reference_wav, reference.wav)
    assert request.reference_sample_rate == reference.sample_rate
    assert (request.target_text, request.reference_text, request.request_id) == (TEXT, reference.text, "r1")
    assert request.generation == GenerationParams(max_new_tokens=MAX_NEW_TOKENS, seed=7, top_k=20)
    no_transcript = serving.parse_synthesis_request(official_inputs(reference.wav, TEXT, None).get, DEFAULTS)
    assert no_transcript.reference_text is None and no_transcript.reference_sample_rate == 16000


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda i: i.update(target_text=np.array([[b"  "]], dtype=object)), "target_text is empty"),
        (lambda i: i.pop("target_text"), "target_text is required"),
        (lambda i: i.pop("reference_wav"), "reference_wav and reference_wav_len are required"),
        (lambda i: i.update(reference_wav_len=np.array([[10**9]], np.int32)), "reference_wav_len must be in"),
        (lambda i: i.update(reference_wav_len=np.array([[0]], np.int32)), "reference_wav_len must be in"),
        (lambda i: i["reference_wav"].__setitem__((0, 5), np.nan), "NaN"),
        (lambda i: i.update(reference_sample_rate=np.array([[5]], np.int32)), "reference_sample_rate"),
        (lambda i: i.update(top_p=np.array([[1.5]], np.float32)), "top_p"),
        (lambda i: i.update(target_text=np.array([[b"\xff\xfe"]], dtype=object)), "UTF-8"),
    ],
)
def test_bad_requests_raise_value_errors_naming_the_input(reference: Reference, change, message: str) -> None:
    inputs = official_inputs(reference.wav, TEXT)
    change(inputs)
    with pytest.raises(ValueError, match=message):
        serving.parse_synthesis_request(inputs.get, DEFAULTS)
    text, invalid = serving.describe_error(ValueError(message))
    assert invalid and text.startswith(serving.INVALID_INPUT_PREFIX)


def test_speaker_cache_is_a_bounded_lru() -> None:
    cache = serving.SpeakerCache(2)
    tokens = (np.zeros(32, np.int32), np.ones(3, np.int32))
    keys = [serving.SpeakerCache.key(np.full(10, v, np.float32), 16000) for v in range(3)]
    assert serving.SpeakerCache.key(np.zeros(10, np.float32), 16000) != serving.SpeakerCache.key(
        np.zeros(10, np.float32), 24000
    )
    cache.put(keys[0], tokens)
    cache.put(keys[1], tokens)
    assert cache.get(keys[0]) is tokens  # keys[0] is now the most recent
    cache.put(keys[2], tokens)  # evicts keys[1]
    assert cache.get(keys[1]) is None and cache.get(keys[2]) is tokens and len(cache) == 2
    assert (cache.hits, cache.misses) == (2, 1)
    assert cache.stats() == serving.CacheStats(entries=2, bytes=2 * (32 + 3) * 4, hits=2, misses=1, evictions=1)
    cache.put(keys[2], (np.zeros(32, np.int32), np.ones(5, np.int32)))  # replaced, not added
    assert cache.stats().bytes == (32 + 3) * 4 + (32 + 5) * 4 and cache.stats().evictions == 1
    disabled = serving.SpeakerCache(0)
    disabled.put(keys[0], tokens)
    assert disabled.get(keys[0]) is None and len(disabled) == 0


def test_offline_pipeline_equals_sparktts_inference_and_caches_the_speaker(spark_tts, reference: Reference) -> None:
    counts: Counter = Counter()
    pipeline = in_process_pipeline(spark_tts, counts)
    request = serving.parse_synthesis_request(
        {**official_inputs(reference.wav, TEXT, reference.text), "reference_sample_rate": np.array([[24000]]),
         "seed": np.array([[3]])}.get,
        DEFAULTS,
    )
    first, second = pipeline.synthesize_batch([request, request])
    expected = spark_tts.inference(
        TEXT, reference.wav, reference.text, prompt_sample_rate=reference.sample_rate,
        params=GenerationParams(seed=3, max_new_tokens=MAX_NEW_TOKENS),
    )
    np.testing.assert_array_equal(first.waveform, expected)
    np.testing.assert_array_equal(second.waveform, expected)
    pipeline.synthesize_batch([request])
    assert counts["tokenize"] <= 2 and pipeline.cache.hits >= 1  # the third request never tokenized
    pipeline.close()


def test_streaming_pipeline_equals_sparktts_stream(spark_tts, reference: Reference) -> None:
    pipeline = in_process_pipeline(spark_tts, Counter())
    request = serving.parse_synthesis_request(
        {**official_inputs(reference.wav, TEXT, reference.text), "reference_sample_rate": np.array([[24000]]),
         "seed": np.array([[5]])}.get,
        DEFAULTS,
    )
    chunks = list(pipeline.stream_chunks(request))
    expected = list(spark_tts.stream(
        TEXT, reference.wav, reference.text, prompt_sample_rate=reference.sample_rate,
        params=GenerationParams(seed=5, max_new_tokens=MAX_NEW_TOKENS),
    ))
    assert [flag for _, flag in chunks] == [False] * (len(expected) - 1) + [True]
    assert len(chunks) == len(expected) >= 2
    for (chunk, _), want in zip(chunks, expected, strict=True):
        np.testing.assert_array_equal(chunk, want)
    joined = join_chunks([c for c, _ in chunks], pipeline.schedule.overlap_samples)
    np.testing.assert_array_equal(joined, crossfade_join(expected, pipeline.schedule.overlap_samples))
    pipeline.close()


def test_streaming_stops_when_cancelled(spark_tts, reference: Reference) -> None:
    pipeline = in_process_pipeline(spark_tts, Counter())
    request = serving.parse_synthesis_request(official_inputs(reference.wav, TEXT).get, DEFAULTS)
    polls = Counter()

    def cancelled_after_first_chunk() -> bool:
        polls["n"] += 1
        return polls["chunks"] >= 1

    chunks = []
    for chunk, _ in pipeline.stream_chunks(request, cancelled_after_first_chunk):
        chunks.append(chunk)
        polls["chunks"] += 1
    assert len(chunks) == 1  # a full run of 300 tokens gives 2 chunks
    pipeline.close()


def test_vocoder_output_of_a_request_does_not_depend_on_its_batch_and_bad_requests_are_isolated(spark_tts) -> None:
    rng = np.random.default_rng(0)
    codec = spark_tts.audio_tokenizer.model.config
    global_tokens = rng.integers(0, codec.speaker_encoder.codebook_size, 32)
    # equal lengths: stacked into one batch, these differed from the solo decode in the last float bit
    items = [(global_tokens, rng.integers(0, codec.quantizer.codebook_size, n)) for n in (173, 173, 173, 9)]
    batched = serving.vocode_batch(spark_tts.audio_tokenizer, items)
    for item, audio in zip(items, batched, strict=True):
        solo = serving.vocode_batch(spark_tts.audio_tokenizer, [item])[0]
        assert isinstance(audio, np.ndarray) and isinstance(solo, np.ndarray)
        assert audio.tobytes() == solo.tobytes()
        assert audio.shape == (320 * item[1].size,)
    bad = [(global_tokens, np.array([1, 2, 10**6])), (global_tokens, np.array([1, 2, 3]))]
    outcome = serving.vocode_batch(spark_tts.audio_tokenizer, bad)
    assert isinstance(outcome[0], ValueError) and outcome[1].shape == (960,)
    with pytest.raises(ValueError, match="32 ids"):
        serving.check_tokens(np.zeros(31), np.zeros(3))


def test_tensorrt_llm_inputs_follow_the_official_bls(spark_tts) -> None:
    params = GenerationParams(max_new_tokens=512, seed=9)
    inputs = serving.tensorrt_llm_inputs([5, 6, 7], params, end_id=2, pad_id=0, streaming=True)
    assert inputs["input_ids"].dtype == np.int32 and inputs["input_ids"].shape == (1, 3)
    assert inputs["input_lengths"].tolist() == [[3]] and inputs["request_output_len"].tolist() == [[512]]
    assert inputs["streaming"].dtype == np.bool_ and inputs["random_seed"].dtype == np.uint64
    assert (inputs["runtime_top_k"][0, 0], inputs["end_id"][0, 0], inputs["pad_id"][0, 0]) == (50, 2, 0)
    response_ids = np.array([[[11, 12, 13, 0, 0]]], np.int32)  # (batch 1, beam 1, padded to 5)
    assert serving.generated_ids(response_ids, np.array([[3]], np.int32)) == [11, 12, 13]
    lookup = serving.semantic_lookup(spark_tts.lm.tokenizer)
    for token_id in (0, 10, *spark_tts.lm.tokenizer.convert_tokens_to_ids(["<|bicodec_semantic_17|>"])):
        assert lookup(token_id) == spark_tts.lm.semantic_index(token_id)
    generated = spark_tts.lm.tokenizer.convert_tokens_to_ids(["<|bicodec_semantic_3|>", "<|im_end|>"])
    assert serving.tokenizer_semantic_ids(spark_tts.lm.tokenizer)(generated) == [3]


def test_answer_batch_keeps_order_and_isolates_failures() -> None:
    def parse(request: int) -> int:
        if request < 0:
            raise ValueError("negative")
        return request

    def run(items: list[int]) -> list[object]:
        return [RuntimeError("odd") if item % 2 else item * 10 for item in items]

    answers = serving.answer_batch([2, -1, 3, 4], parse, run, lambda out: ("ok", out), lambda exc: ("err", str(exc)))
    assert answers == [("ok", 20), ("err", "negative"), ("err", "odd"), ("ok", 40)]

    def broken(items: list[int]) -> list[object]:
        raise RuntimeError("batch failed")

    assert serving.answer_batch([1, 2], parse, broken, str, lambda exc: str(exc)) == ["batch failed"] * 2


def test_chunk_inputs_override_the_models_schedule_field_by_field(reference: Reference) -> None:
    default = ChunkSchedule(first=15, scale=2.0, largest=25, overlap=5)
    inputs = official_inputs(reference.wav, TEXT)
    assert serving.parse_synthesis_request(inputs.get, DEFAULTS, schedule=default).schedule is None
    inputs["chunk_first_tokens"] = np.array([[10]], np.int32)
    inputs["chunk_overlap_tokens"] = np.array([[2]], np.int32)
    request = serving.parse_synthesis_request(inputs.get, DEFAULTS, schedule=default)
    assert request.schedule == ChunkSchedule(first=10, scale=2.0, largest=25, overlap=2)
    inputs["chunk_overlap_tokens"] = np.array([[10]], np.int32)
    with pytest.raises(ValueError, match=r"chunk schedule \(chunk_first_tokens=10, chunk_overlap_tokens=10\)"):
        serving.parse_synthesis_request(inputs.get, DEFAULTS, schedule=default)
    parameters = {"chunk_first_tokens": "15", "chunk_steady_tokens": "25", "chunk_scale": "2.0",
                  "chunk_overlap_tokens": "5"}
    assert serving.schedule_from_parameters(parameters) == default
    with pytest.raises(ValueError, match="chunk_scale"):
        serving.schedule_from_parameters({**parameters, "chunk_scale": "${chunk_scale}"})


def test_stream_chunks_follow_the_requests_schedule(spark_tts, reference: Reference) -> None:
    pipeline = in_process_pipeline(spark_tts, Counter())
    inputs = {**official_inputs(reference.wav, TEXT), "seed": np.array([[6]]),
              "chunk_first_tokens": np.array([[15]], np.int32), "chunk_steady_tokens": np.array([[25]], np.int32),
              "chunk_scale": np.array([[2.0]], np.float32)}
    request = serving.parse_synthesis_request(inputs.get, DEFAULTS)
    chunks = [chunk for chunk, _ in pipeline.stream_chunks(request)]
    sizes = [c.size // 320 for c in chunks]
    assert sizes[:3] == [15, 25, 25] and sum(sizes) - 5 * (len(sizes) - 1) == MAX_NEW_TOKENS
    pipeline.close()


def designed_inputs(text: str, seed: int, **attributes: str) -> dict:
    inputs = {"target_text": np.array([[text.encode()]], dtype=object), "seed": np.array([[seed]], np.int64)}
    inputs.update({name: np.array([[value.encode()]], dtype=object) for name, value in attributes.items()})
    return inputs


def test_voice_attributes_design_a_voice_whose_tokens_speak_it_again(spark_tts) -> None:
    """Control mode decodes in its grammar (32 globals on demo weights too); a seed repeats the design,
    and the designed globals sent back as stored tokens skip the tokenizer and keep the voice."""
    counts: Counter = Counter()
    pipeline = in_process_pipeline(spark_tts, counts)
    design = serving.parse_synthesis_request(designed_inputs(TEXT, 5, gender="female", pitch="high").get, DEFAULTS)
    assert design.style == serving.VoiceStyle("female", "high", "moderate") and design.reference_wav is None
    first, again = pipeline.synthesize_batch([design, design])
    assert first.global_tokens.shape == (32,) and first.waveform.size > 0
    np.testing.assert_array_equal(first.global_tokens, again.global_tokens)
    np.testing.assert_array_equal(first.waveform, again.waveform)
    other = pipeline.synthesize_batch([replace(design, generation=replace(design.generation, seed=6))])[0]
    assert not np.array_equal(other.global_tokens, first.global_tokens)
    stored = {"target_text": np.array([[TEXT.encode()]], dtype=object), "seed": np.array([[9]], np.int64),
              "speaker_global_tokens": first.global_tokens.reshape(1, -1)}
    reused = serving.parse_synthesis_request(stored.get, DEFAULTS)
    (spoken,) = pipeline.synthesize_batch([reused])
    np.testing.assert_array_equal(spoken.global_tokens, first.global_tokens)
    assert counts["tokenize"] == 0
    chunks = [chunk for chunk, _ in pipeline.stream_chunks(design)]
    assert sum(chunk.size for chunk in chunks) > 0  # the streaming twin designs voices too
    pipeline.close()


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"gender": "robot"}, "gender must be one of female, male; got 'robot'"),
        ({"gender": "male", "pitch": "loud"}, "pitch must be one of very_low, low, moderate, high, very_high"),
        ({"speed_level": "low"}, "also needs gender"),
    ],
)
def test_bad_voice_attributes_name_the_input_and_the_allowed_values(inputs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        serving.parse_synthesis_request(designed_inputs(TEXT, 1, **inputs).get, DEFAULTS)


def test_one_voice_source_per_request(reference: Reference) -> None:
    both = {**official_inputs(reference.wav, TEXT), **designed_inputs(TEXT, 1, gender="male")}
    with pytest.raises(ValueError, match="one voice source, got reference_wav and gender"):
        serving.parse_synthesis_request(both.get, DEFAULTS)
    short = designed_inputs(TEXT, 1)
    short["speaker_global_tokens"] = np.zeros((1, 31), np.int32)
    with pytest.raises(ValueError, match="speaker_global_tokens must hold 32 ids, got 31"):
        serving.parse_synthesis_request(short.get, DEFAULTS)


def test_stream_batching_parameter_is_on_unless_false_and_names_a_bad_value() -> None:
    assert serving.stream_batching_enabled({}) and serving.stream_batching_enabled({"stream_batching": "true"})
    assert not serving.stream_batching_enabled({"stream_batching": "false"})
    with pytest.raises(ValueError, match="stream_batching must be true or false, got 'yes'"):
        serving.stream_batching_enabled({"stream_batching": "yes"})
