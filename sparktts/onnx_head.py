"""The exported Spark LLM with a head that can be skipped, and a head over chosen rows built from it.

Why: the head is 166,000 x 896, a third of the weights a decode step reads at int8 (167 of 570 MB at
full size), and a row that may only emit Spark's grammar tokens (``restrict_vocab``: ~12.3k rows) needs
a fourteenth of it. ONNX Runtime runs every node of a graph whatever outputs are asked for (measured:
asking only the hidden state took as long as the logits), so the choice has to be in the graph:
``split_head`` writes, once per export, ``decoder.onnx``: the builder's graph with its head under an
``If`` on a new boolean input ``full_head`` (true: ``logits`` over the vocabulary; false: the head is
skipped), and the head's input (the last hidden state) as an extra output; and ``head.onnx``, the head
alone, from which ``rows_head`` slices a head over chosen rows. Both are graph files that read their
weights from the builder's ``model.onnx.data`` (nothing is copied on disk, and only the ``rows_head``
slice is loaded twice). One session, not a body and a head session: two sessions' thread pools
spin against each other on 2 cores (full head 59.7 ms per step instead of 27.6 at one row).
Measured at full size on 2 cores (int8): 29.1 / 44.4 ms per step at 1 / 4 rows with the full head,
19.5 / 35.5 ms without it.

``rows_head`` slices the head's own (quantized) weights, so a kept row scores what the full head gives
it: bit for bit at float32, to float rounding at int8 (the kernel sums a 12k-row head in another
order: one score in 12k moved by 2e-6 on the tiny model).

Torch-free: ``sparktts.onnx_export`` calls ``split_head`` when it converts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["DECODER_FILE", "FULL_HEAD", "HEAD_FILE", "HeadSplitError", "rows_head", "split_head"]

DECODER_FILE = "decoder.onnx"
HEAD_FILE = "head.onnx"
LOGITS = "logits"
FULL_HEAD = "full_head"  # decoder.onnx's boolean input: run the head or skip it
_HEAD_OPS = ("MatMul", "MatMulNBits")


class HeadSplitError(RuntimeError):
    """The graph's logits do not come from one MatMul over the hidden state."""


def split_head(model_dir: Path, model_file: str = "model.onnx") -> None:
    """Write ``decoder.onnx`` (the head under an ``If``, the hidden state as an output) and ``head.onnx``
    beside ``model_file``; both keep their weights in the model's external data file."""
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(str(model_dir / model_file), load_external_data=False)
    graph = model.graph
    heads = [node for node in graph.node if LOGITS in node.output]
    if len(heads) != 1 or heads[0].op_type not in _HEAD_OPS:
        found = [node.op_type for node in heads]
        raise HeadSplitError(f"{model_dir / model_file}: logits come from {found}, not one of {_HEAD_OPS}")
    head = heads[0]
    hidden = head.input[0]
    weights = {name for name in head.input[1:] if name}
    logits = next(value for value in graph.output if value.name == LOGITS)
    elem_type = logits.type.tensor_type.elem_type
    hidden_size = next(attr.i for attr in head.attribute if attr.name == "K") if head.op_type == "MatMulNBits" else \
        next(init.dims[0] for init in graph.initializer if init.name == head.input[1])
    hidden_value = helper.make_tensor_value_info(hidden, elem_type, ["batch_size", 1, int(hidden_size)])

    head_model = helper.make_model(
        helper.make_graph([head], "spark_lm_head", [hidden_value], [logits],
                          initializer=[init for init in graph.initializer if init.name in weights]),
        opset_imports=list(model.opset_import), ir_version=model.ir_version)
    onnx.save(head_model, str(model_dir / HEAD_FILE))

    full = helper.make_node(head.op_type, list(head.input), ["full_head_logits"], name="full_head", domain=head.domain)
    full.attribute.extend(head.attribute)
    skipped = helper.make_node("Identity", [hidden], ["skipped_head"], name="skipped_head")
    branch = helper.make_node(
        "If", [FULL_HEAD], [LOGITS], name="head",
        then_branch=helper.make_graph([full], "full", [], [helper.make_tensor_value_info("full_head_logits", elem_type, None)]),
        else_branch=helper.make_graph([skipped], "skip", [], [helper.make_tensor_value_info("skipped_head", elem_type, None)]))
    graph.node.remove(head)
    graph.node.append(branch)
    graph.input.append(helper.make_tensor_value_info(FULL_HEAD, TensorProto.BOOL, []))
    graph.output.append(hidden_value)
    last = logits.type.tensor_type.shape.dim[len(logits.type.tensor_type.shape.dim) - 1]
    last.ClearField("dim_value")
    last.dim_param = "head_rows"  # the vocabulary, or the hidden size when the head is skipped
    onnx.save(model, str(model_dir / DECODER_FILE))


def rows_head(head_path: Path, rows: np.ndarray) -> bytes:
    """A serialized head that scores only the vocabulary rows ``rows`` (sorted ids), in that order:
    the same weights (int8 blocks and their scales, or float32 columns) sliced, so the same scores
    (to float rounding)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(head_path), load_external_data=False)
    node = model.graph.node[0]
    rows = np.asarray(rows, dtype=np.int64)
    arrays = {init.name: _weights(init, head_path.parent) for init in model.graph.initializer}
    if node.op_type == "MatMul":
        sliced = {node.input[1]: arrays[node.input[1]][:, rows]}
    else:  # MatMulNBits: B (N, blocks, blob); scales, zero points and bias lead with N too
        vocab = next(attr.i for attr in node.attribute if attr.name == "N")
        sliced = {}
        for index, name in enumerate(node.input[1:], start=1):
            if not name:
                continue
            if index == 4:  # g_idx: one entry per input feature, not per row
                raise HeadSplitError(f"{head_path}: a MatMulNBits head with g_idx cannot be cut by rows")
            array = arrays[name]
            sliced[name] = array.reshape(vocab, -1)[rows].reshape((len(rows), *array.shape[1:]))
        for attr in node.attribute:
            if attr.name == "N":
                attr.i = len(rows)
    kept = [numpy_helper.from_array(np.ascontiguousarray(sliced.get(init.name, arrays[init.name])), init.name)
            for init in model.graph.initializer]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    dims = model.graph.output[0].type.tensor_type.shape.dim
    dims[len(dims) - 1].ClearField("dim_param")
    dims[len(dims) - 1].dim_value = len(rows)
    return bytes(model.SerializeToString())


def _weights(init: Any, folder: Path) -> np.ndarray:
    """An initializer as an array; one in an external data file is mapped, not read, so slicing a few
    rows of the 166,000-row head reads those rows only (no transient copy of the whole head)."""
    from onnx import external_data_helper, helper, numpy_helper

    if not external_data_helper.uses_external_data(init):
        return numpy_helper.to_array(init)
    info = {entry.key: entry.value for entry in init.external_data}
    dtype = np.dtype(helper.tensor_dtype_to_np_dtype(init.data_type))
    return np.memmap(folder / info["location"], dtype=dtype, mode="r", offset=int(info.get("offset", 0)),
                     shape=tuple(init.dims))
