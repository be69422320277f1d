"""``sparktts.onnx_decoder`` on the tiny LLM's exports: rows of different lengths that share one run
score exactly what each scores alone and what ONNX Runtime GenAI's generator scores, while rows join,
leave and the cache buffers grow and shrink under them."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from sparktts import onnx_decoder
from sparktts.errors import CheckpointError
from sparktts.llm import SparkLM
from sparktts.llm_onnx import OnnxSparkLM
from sparktts.onnx_decoder import KVSlots, OnnxDecoder
from sparktts.onnx_head import DECODER_FILE, HEAD_FILE

from .conftest import golden_params

og = pytest.importorskip("onnxruntime_genai")

FED = 300  # positions each row reaches: past the first allocation (256), so the buffers grow


def prompts(lm: OnnxSparkLM, golden) -> list[list[int]]:
    """Three prompts of different lengths (the golden clone prompt, a control prompt, a cut one)."""
    clone = lm.encode(golden["b1_clone_prompt_text"]["prompt"])[0].tolist()
    control = lm.encode(golden["b3_control"]["prompt"])[0].tolist()
    return [clone, control, clone[: len(clone) // 3]]


def fed_ids(lm: OnnxSparkLM, row: int, prompt: list[int]) -> list[int]:
    """What row ``row`` is fed after its prompt (up to ``FED`` positions): grammar ids, a different run per row."""
    grammar = lm.grammar_ids().tolist()
    return [grammar[(row * 97 + step * 13) % len(grammar)] for step in range(FED - len(prompt))]


def solo_logits(lm: OnnxSparkLM, prompt: list[int], fed: list[int]) -> np.ndarray:
    """(1 + len(fed), V): the prompt's scores, then the scores after each fed id, the row alone."""
    row = lm.open_row(prompt)
    out = [row.logits().numpy()[0]]
    for token in fed:
        row.feed(token)
        out.append(row.logits().numpy()[0])
    return np.stack(out)


def test_rows_joining_and_leaving_score_what_they_score_alone(onnx_int8: OnnxSparkLM, golden) -> None:
    """Rows join at steps 0, 5 and 11; the middle one leaves after 9 ids; each row's scores, step by
    step, are bit for bit its solo scores, and the cache buffers grow under the rows and are released
    when the last one leaves."""
    decoder = onnx_int8.decoder
    rows = prompts(onnx_int8, golden)
    fed = [fed_ids(onnx_int8, row, prompt) for row, prompt in enumerate(rows)]
    expected = [solo_logits(onnx_int8, prompt, ids) for prompt, ids in zip(rows, fed, strict=True)]
    join_at, leave_after = {0: 0, 5: 1, 11: 2}, {1: 9}
    slots = decoder.new_slots()
    order: list[int] = []  # row per slot
    done = dict.fromkeys(range(len(rows)), 0)  # ids fed so far
    capacities = set()
    step = 0
    while step <= max(join_at) or order:
        if order:
            scores = decoder.step(slots, [fed[row][done[row]] for row in order])
            for slot, row in enumerate(order):
                done[row] += 1
                np.testing.assert_array_equal(scores[slot], expected[row][done[row]], err_msg=f"row {row} step {step}")
            for slot in reversed(range(len(order))):
                row = order[slot]
                if done[row] == leave_after.get(row, len(fed[row])):
                    slots.remove(slot)
                    del order[slot]
        if step in join_at:
            row = join_at[step]
            slot = slots.add(len(rows[row]) + 1)
            np.testing.assert_array_equal(decoder.prefill(slots, slot, rows[row]), expected[row][0])
            order.append(row)
        capacities.add(slots.capacity)
        step += 1
    assert done == {0: len(fed[0]), 1: 9, 2: len(fed[2])}
    assert slots.capacity == (0, 0) and len(slots) == 0  # released with the last row
    assert max(rows for rows, _positions in capacities) >= 2  # rows grew as the second row joined
    assert len({positions for _rows, positions in capacities}) >= 2  # positions grew while decoding


def test_the_scores_are_onnx_runtime_genai_s(onnx_int8: OnnxSparkLM, int8_dir, golden) -> None:
    """The engine the export was made for, fed the same ids, scores the same numbers."""
    prompt = prompts(onnx_int8, golden)[0]
    fed = fed_ids(onnx_int8, 0, prompt)[:20]
    ours = solo_logits(onnx_int8, prompt, fed)
    model = og.Model(str(int8_dir))
    params = og.GeneratorParams(model)
    params.set_search_options(max_length=len(prompt) + len(fed) + 1, batch_size=1)
    generator = og.Generator(model, params)
    generator.append_tokens(np.array([prompt], dtype=np.int32))
    theirs = [np.array(generator.get_logits(), dtype=np.float32).reshape(-1)]
    for token in fed:
        generator.append_tokens(np.array([[token]], dtype=np.int32))
        theirs.append(np.array(generator.get_logits(), dtype=np.float32).reshape(-1))
    np.testing.assert_allclose(ours, np.stack(theirs), rtol=0, atol=1e-6)


def test_slots_keep_the_filled_positions_when_they_grow(onnx_fp32: OnnxSparkLM) -> None:
    slots = KVSlots(onnx_fp32.decoder.layout, np.dtype(np.float32))
    first = slots.add(10)
    slots.lengths[first] = 10
    for buffer in slots.buffers:
        buffer[first, :, :10] = np.arange(10, dtype=np.float32)[None, :, None]
    second = slots.add(600)  # both more rows and more positions than the first allocation held
    assert (second, slots.capacity) == (1, (2, 768))
    for buffer in slots.buffers:
        np.testing.assert_array_equal(buffer[first, 0, :10, 0], np.arange(10))
    slots.lengths[second] = 3
    for buffer in slots.buffers:
        buffer[second, :, :3] = 7.0
    slots.remove(first)  # the second row moves up with its positions
    assert slots.lengths == [3]
    for buffer in slots.buffers:
        np.testing.assert_array_equal(buffer[0, :, :3], 7.0)


def test_a_folder_without_an_export_is_refused_by_name(spark_tiny: Path, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="genai_config.json, decoder.onnx, head.onnx"):
        OnnxSparkLM.from_pretrained(spark_tiny / "model" / "LLM", tmp_path)


def test_a_graph_without_cache_inputs_is_refused(fp32_dir: Path, tmp_path: Path) -> None:
    export = tmp_path / "export"
    shutil.copytree(fp32_dir, export)
    shutil.copyfile(export / HEAD_FILE, export / DECODER_FILE)  # a graph, but not a decoder's
    with pytest.raises(ValueError, match="past_key_values.0.key"):
        OnnxDecoder.load(export, threads=1)


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_the_grammar_head_scores_its_rows_as_the_full_head_does(request, precision: str, golden) -> None:
    lm: OnnxSparkLM = request.getfixturevalue(f"onnx_{precision}")
    decoder, head = lm.decoder, lm.grammar_head()
    rows = lm.grammar_ids().numpy()
    np.testing.assert_array_equal(head.rows, rows)
    prompt = prompts(lm, golden)[0]
    full, cut = decoder.new_slots(), decoder.new_slots()
    scores = decoder.prefill(full, full.add(len(prompt) + 1), prompt)
    # int8: the kernel sums a 12k-row head in another order than a 166k-row one (1 score in 12k moved by 2e-6)
    close = {"rtol": 0, "atol": 1e-5 if precision == "int8" else 0}
    np.testing.assert_allclose(decoder.prefill(cut, cut.add(len(prompt) + 1), prompt, head), scores[rows], **close)
    for token in fed_ids(lm, 0, prompt)[:5]:
        scores = decoder.step(full, [token])
        np.testing.assert_allclose(decoder.step(cut, [token], head), scores[:, rows], **close)
    assert decoder.rows_head(rows) is head  # built once


def test_restricted_rows_draw_the_torch_restricted_ids(lm: SparkLM, onnx_fp32: OnnxSparkLM, golden) -> None:
    """float32 export, grammar head: the seeded ids of torch's restricted decode (same scores on the
    grammar rows, -inf elsewhere, the same sampler)."""
    for case in ("b1_clone_prompt_text", "b4_clone_prompt_text_greedy"):
        params = golden_params(case, restrict_vocab=True)
        prompt = golden[case]["prompt"]
        assert onnx_fp32.generate(prompt, params) == lm.generate(prompt, params), case


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_a_prompt_prefilled_in_chunks_scores_as_in_one_run(request, precision: str, golden,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Each chunk attends to the cache the earlier ones filled; the scores after the prompt and after
    the next ids are those of a one-run prefill (to float rounding)."""
    lm: OnnxSparkLM = request.getfixturevalue(f"onnx_{precision}")
    prompt = prompts(lm, golden)[0]
    fed = fed_ids(lm, 0, prompt)[:4]

    def decoded(chunk: int) -> np.ndarray:
        monkeypatch.setattr(onnx_decoder, "PREFILL_CHUNK", chunk)
        return solo_logits(lm, prompt, fed)

    assert len(prompt) > 3 * 7
    np.testing.assert_allclose(decoded(7), decoded(len(prompt)), rtol=0, atol=1e-5)
