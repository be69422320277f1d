"""The exported Spark LLM run by ONNX Runtime itself: rows at different lengths decode in one run.

ONNX Runtime GenAI batches only the sequences that start together in one generator, so the first
serving backend gave each row its own generator and stepped the rows one after the other: at four
rows the aggregate stayed at the one-row rate. The graph the model builder writes does not need
that restriction. Its attention (``GroupQueryAttention``) takes each row's own length from the
attention mask (``seqlens_k``), writes that row's new key/value at its own position, and rotates it
by its own position, so rows of different lengths share one run when the mask is right-padded. The
weights are then read once per step for every row: ``bench/bench_onnx_decode.py`` (full size, int8,
2 cores, with the serving sampler) gives 36-37 / 60-64 / 85-87 / 110-125 tokens/s at 1 / 2 / 4 / 8
rows, where a generator per row stayed at 37-44 whatever the rows (one row: the same graph, equal
within this box's spread). The logits are bit-identical to GenAI's generator and to the same row
decoded alone (``tests/sparktts_lm/test_onnx_decoder.py``).

``KVSlots`` keeps every row's cache in one buffer per layer and kind, shaped like the graph's
``past_key_values.N.key`` input, (rows, kv_heads, positions, head_size), with the rows packed at the
front: the first ``n`` rows are a contiguous view that is bound as both the past input and the present
output (the builder's graph shares them, as GenAI's ``past_present_share_buffer``), so a step copies
no cache. Buffers grow when a row or a longer sequence needs room (only the filled positions are
copied) and are released when the last row leaves, so memory follows the rows decoding, not the
budget they might use.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sparktts.errors import CheckpointError
from sparktts.onnx_head import DECODER_FILE, FULL_HEAD, HEAD_FILE, LOGITS, rows_head

__all__ = ["DecoderLayout", "Head", "KVSlots", "OnnxDecoder"]

_POSITION_CHUNK = 256  # positions are allocated in multiples of this
GENAI_CONFIG = "genai_config.json"  # the builder's description of the graph's inputs and outputs
PREFILL_CHUNK = 128  # prompt positions per prefill run (see OnnxDecoder.prefill)


@dataclass(frozen=True)
class DecoderLayout:
    """What the export's ``genai_config.json`` says about the graph's inputs and outputs."""

    layers: int
    kv_heads: int
    head_size: int
    past_key: str  # "%d" formats: the layer index
    past_value: str
    present_key: str
    present_value: str
    input_ids: str = "input_ids"
    attention_mask: str = "attention_mask"

    @classmethod
    def read(cls, onnx_dir: Path) -> DecoderLayout:
        decoder = json.loads((onnx_dir / GENAI_CONFIG).read_text(encoding="utf-8"))["model"]["decoder"]
        inputs, outputs = decoder["inputs"], decoder["outputs"]
        return cls(
            layers=int(decoder["num_hidden_layers"]), kv_heads=int(decoder["num_key_value_heads"]),
            head_size=int(decoder["head_size"]),
            past_key=inputs["past_key_names"], past_value=inputs["past_value_names"],
            present_key=outputs["present_key_names"], present_value=outputs["present_value_names"],
            input_ids=inputs.get("input_ids", "input_ids"),
            attention_mask=inputs.get("attention_mask", "attention_mask"),
        )

    def cache_names(self) -> list[tuple[str, str]]:
        """(past input, present output) per buffer: each layer's key, then its value."""
        return [(past % layer, present % layer) for layer in range(self.layers)
                for past, present in ((self.past_key, self.present_key), (self.past_value, self.present_value))]


class KVSlots:
    """Every row's key/value cache, rows packed at the front of one buffer per layer and kind.

    ``lengths[i]`` is how many positions row ``i`` has filled. Not thread-safe: one batch owns it.
    """

    def __init__(self, layout: DecoderLayout, dtype: np.dtype) -> None:
        self.layout = layout
        self.dtype = dtype
        self.lengths: list[int] = []
        self.buffers: list[np.ndarray] = []

    def __len__(self) -> int:
        return len(self.lengths)

    @property
    def capacity(self) -> tuple[int, int]:
        """(rows, positions) the buffers hold."""
        return (self.buffers[0].shape[0], self.buffers[0].shape[2]) if self.buffers else (0, 0)

    def add(self, positions: int) -> int:
        """A new empty row with room for ``positions`` -> its slot (the last one)."""
        self.reserve(len(self.lengths) + 1, positions)
        self.lengths.append(0)
        return len(self.lengths) - 1

    def remove(self, slot: int) -> None:
        """Drop row ``slot``; the rows after it move up one slot (their order is kept)."""
        count = len(self.lengths)
        if slot < count - 1:
            filled = max(self.lengths[slot + 1:])
            for buffer in self.buffers:
                buffer[slot:count - 1, :, :filled] = buffer[slot + 1:count, :, :filled]
        del self.lengths[slot]
        if not self.lengths:
            self.buffers = []  # the last row left: give the memory back

    def reserve(self, rows: int, positions: int) -> None:
        """Make room for ``rows`` rows of ``positions`` positions, keeping what is filled."""
        have_rows, have_positions = self.capacity
        if rows <= have_rows and positions <= have_positions:
            return
        new_rows = have_rows if rows <= have_rows else max(rows, 2 * have_rows)
        new_positions = have_positions
        if positions > have_positions:  # grow by a quarter at least, so a long row reallocates rarely
            wanted = max(positions, have_positions + have_positions // 4)
            new_positions = -(-wanted // _POSITION_CHUNK) * _POSITION_CHUNK
        shape = (new_rows, self.layout.kv_heads, new_positions, self.layout.head_size)
        filled = max(self.lengths, default=0)
        count = len(self.lengths)
        grown = []
        for old in self.buffers or [None] * 2 * self.layout.layers:
            new = np.zeros(shape, dtype=self.dtype)
            if old is not None and count:
                new[:count, :, :filled] = old[:count, :, :filled]
            grown.append(new)
        self.buffers = grown

    def views(self, first: int, stop: int) -> list[np.ndarray]:
        """Rows ``first:stop`` of every buffer (contiguous views, bound in place)."""
        return [buffer[first:stop] for buffer in self.buffers]


class Head:
    """A head over chosen vocabulary rows: hidden states (rows, 1, H) -> scores (rows, K) for the ids
    ``rows``, in that order (``sparktts.onnx_head.rows_head``)."""

    def __init__(self, session: Any, rows: np.ndarray) -> None:
        self.session = session
        self.rows = rows
        self._input = session.get_inputs()[0].name

    def scores(self, hidden: np.ndarray) -> np.ndarray:
        (logits,) = self.session.run([LOGITS], {self._input: hidden})
        return np.asarray(logits[:, -1], dtype=np.float32)


class OnnxDecoder:
    """An ONNX Runtime session over a model-builder export with a skippable head
    (``sparktts.onnx_head``): prefills and batch steps into ``KVSlots``, scored by the full head or,
    skipping it, by a ``Head`` over chosen rows.

    Thread-safe as ONNX Runtime's ``run`` is, as long as each ``KVSlots`` has one owner.
    """

    def __init__(self, session: Any, layout: DecoderLayout, head_path: Path) -> None:
        self.session = session
        self.layout = layout
        self._cache_names = layout.cache_names()  # bound at every run
        types = {value.name: value.type for value in session.get_inputs()}
        missing = [name for name in (layout.past_key % 0, FULL_HEAD) if name not in types]
        if missing:
            raise ValueError(f"the ONNX model has no input {missing}: not a decoder written by sparktts.onnx_head")
        self.cache_dtype = np.dtype(np.float16 if types[layout.past_key % 0] == "tensor(float16)" else np.float32)
        self._id_dtype = np.int32 if types.get(layout.input_ids) == "tensor(int32)" else np.int64
        self._mask_dtype = np.int32 if types.get(layout.attention_mask) == "tensor(int32)" else np.int64
        self._hidden = session.get_outputs()[-1].name
        self._head_path = head_path
        self._row_heads: dict[bytes, Head] = {}
        self._lock = threading.Lock()

    @classmethod
    def load(cls, onnx_dir: str | Path, *, threads: int | None = None) -> OnnxDecoder:
        """onnx_dir: ``sparktts.onnx_export.export_llm``'s folder; threads: intra-op threads (None: one per core)."""
        import onnxruntime as ort

        onnx_dir = Path(onnx_dir)
        wanted = (GENAI_CONFIG, DECODER_FILE, HEAD_FILE)
        if not all((onnx_dir / name).is_file() for name in wanted):
            raise CheckpointError(f"{onnx_dir} holds no exported Spark LLM ({', '.join(wanted)}): "
                                  "export it with sparktts.onnx_export.export_llm")
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(onnx_dir / DECODER_FILE), options, providers=["CPUExecutionProvider"])
        return cls(session, DecoderLayout.read(onnx_dir), onnx_dir / HEAD_FILE)

    def rows_head(self, rows: np.ndarray) -> Head:
        """A head scoring only the vocabulary ids ``rows``, built from the full head's weights at first use.

        Its session runs on the calling thread: a second thread pool would spin against the decoder's
        on the same cores (the scores of 12k rows take well under a millisecond on one)."""
        import onnxruntime as ort

        rows = np.asarray(rows, dtype=np.int64)
        key = rows.tobytes()
        with self._lock:
            if key not in self._row_heads:
                options = ort.SessionOptions()
                options.intra_op_num_threads = 1
                options.inter_op_num_threads = 1
                session = ort.InferenceSession(rows_head(self._head_path, rows), options,
                                               providers=["CPUExecutionProvider"])
                self._row_heads[key] = Head(session, rows)
            return self._row_heads[key]

    def new_slots(self) -> KVSlots:
        return KVSlots(self.layout, self.cache_dtype)

    def prefill(self, slots: KVSlots, slot: int, input_ids: Sequence[int], head: Head | None = None) -> np.ndarray:
        """Run ``input_ids`` as row ``slot``'s prompt (its cache is empty) -> (K,) float32 next-position
        scores: over the vocabulary, or over ``head``'s rows.

        In chunks of ``PREFILL_CHUNK`` positions, each attending to the cache the earlier ones filled
        (the same scores as one run: max difference 0.0 at full size), so the activations ONNX Runtime
        allocates, and keeps in its arena, follow the chunk and not the prompt: an 800-token prompt
        at full size grew the process by 92 MiB in chunks of 128 against 213 MiB in one run, in the
        same time (2.72 / 2.79 s). Only the last chunk is scored."""
        count = len(input_ids)
        if count == 0:
            raise ValueError("a prompt needs at least one id")
        slots.reserve(len(slots), count + 1)
        caches = slots.views(slot, slot + 1)
        prompt = np.asarray(input_ids, dtype=self._id_dtype).reshape(1, count)
        for start in range(0, count, PREFILL_CHUNK):
            stop = min(start + PREFILL_CHUNK, count)
            mask = np.ones((1, stop), dtype=self._mask_dtype)
            last = stop == count
            scores = self._run(caches, prompt[:, start:stop], mask, head, score=last)
        slots.lengths[slot] = count
        return scores[0]

    def step(self, slots: KVSlots, tokens: Sequence[int], head: Head | None = None) -> np.ndarray:
        """Feed every row its next id (row i: tokens[i]) in one run -> (rows, K) float32 scores."""
        if len(tokens) != len(slots):
            raise ValueError(f"{len(tokens)} ids for {len(slots)} rows")
        lengths = np.asarray(slots.lengths)
        total = int(lengths.max()) + 1
        slots.reserve(len(slots), total)
        ids = np.asarray(tokens, dtype=self._id_dtype).reshape(-1, 1)
        mask = (np.arange(total) <= lengths[:, None]).astype(self._mask_dtype)  # right-padded per row
        scores = self._run(slots.views(0, len(slots)), ids, mask, head)
        slots.lengths = [length + 1 for length in slots.lengths]
        return scores

    def _run(self, caches: list[np.ndarray], ids: np.ndarray, mask: np.ndarray, head: Head | None,
             *, score: bool = True) -> np.ndarray:
        """One run over the bound caches -> (rows, K) scores of the last position by ``head`` (None: the
        graph's full head); not ``score``: an empty array, every head skipped."""
        import onnxruntime as ort

        binding = self.session.io_binding()
        for (past, present), cache in zip(self._cache_names, caches, strict=True):
            value = ort.OrtValue.ortvalue_from_numpy(cache)  # no copy: the view's memory is the graph's
            binding.bind_ortvalue_input(past, value)
            binding.bind_ortvalue_output(present, value)
        binding.bind_cpu_input(self.layout.input_ids, ids)
        binding.bind_cpu_input(self.layout.attention_mask, mask)
        binding.bind_cpu_input(FULL_HEAD, np.array(score and head is None))
        binding.bind_output(LOGITS)
        binding.bind_output(self._hidden)
        self.session.run_with_iobinding(binding)
        *_caches, logits, hidden = binding.get_outputs()
        if not score:
            return np.empty((ids.shape[0], 0), dtype=np.float32)
        if head is None:
            return np.asarray(logits.numpy()[:, -1], dtype=np.float32)
        return head.scores(hidden.numpy())
