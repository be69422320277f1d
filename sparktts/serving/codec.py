"""BiCodec as the ``audio_tokenizer`` and ``vocoder`` models run it: batched, per-request errors."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from sparktts import prompts
from sparktts.serving.inputs import (
    instance_parameters,
    model_parameters,
    required_parameter,
    token_row,
    torch_placement,
)

if TYPE_CHECKING:
    from sparktts.audio_tokenizer import BiCodecTokenizer

logger = logging.getLogger(__name__)

Tokens = tuple[np.ndarray, np.ndarray]  # global (32,) int32, semantic (T,) int32


def load_codec(
    model_config: str | Mapping, *, with_encoder: bool, with_decoder: bool, instance: Mapping[str, object] | None = None
) -> BiCodecTokenizer:
    """The BiCodec half a model needs, from its config's ``model_dir`` / ``device`` / ``dtype`` parameters
    (the tokenizer drops the decoder, the vocoder the encoder and wav2vec2). ``instance``: Triton's
    ``initialize`` args, whose KIND_GPU device id pins the instance to its card (``instance_parameters``)."""
    from sparktts.audio_tokenizer import BiCodecTokenizer

    parameters = instance_parameters(model_parameters(model_config), instance or {})
    model_dir = required_parameter(parameters, "model_dir")
    device, dtype = torch_placement(parameters)
    codec = BiCodecTokenizer.from_pretrained(
        model_dir, device=device, dtype=dtype, with_encoder=with_encoder, with_decoder=with_decoder
    )
    parts = " + ".join(name for name, wanted in (("encoder", with_encoder), ("decoder", with_decoder)) if wanted)
    logger.info("BiCodec %s from %s on %s (%s)", parts, model_dir, device, dtype)
    return codec


def tokenize_references(tokenizer: BiCodecTokenizer, references: Sequence[tuple[np.ndarray, int]]) -> list[Tokens]:
    """(wav, sample rate) clips -> (global (32,), semantic (T,)) int32 each, tokenized as one batch.

    Each clip is first resampled to 16 kHz and volume-normalised (``prepare_reference``), which the
    official runtime leaves to its clients.
    """
    prepared = [tokenizer.prepare_reference(wav, rate) for wav, rate in references]
    out = []
    for global_tokens, semantic_tokens in tokenizer.tokenize_batch(prepared):
        out.append((token_row(global_tokens)[0], token_row(semantic_tokens)[0]))
    return out


def check_tokens(global_tokens: np.ndarray, semantic_tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shape checks of one vocoder request -> (global (32,), semantic (T,)) int64.

    Id ranges are checked by ``BiCodecTokenizer.detokenize`` against the loaded codebooks.
    """
    global_ids = np.asarray(global_tokens).reshape(-1).astype(np.int64)
    semantic_ids = np.asarray(semantic_tokens).reshape(-1).astype(np.int64)
    if global_ids.size != prompts.NUM_GLOBAL_TOKENS:
        raise ValueError(f"global_tokens must hold {prompts.NUM_GLOBAL_TOKENS} ids, got {global_ids.size}")
    if semantic_ids.size == 0:
        raise ValueError("semantic_tokens is empty")
    return global_ids, semantic_ids


def vocode_batch(
    tokenizer: BiCodecTokenizer, items: Sequence[tuple[np.ndarray, np.ndarray]]
) -> list[np.ndarray | ValueError]:
    """(global (32,), semantic (T,)) pairs -> (320 * T,) float32 waveforms, in order.

    Requests with the same number of semantic tokens are decoded together (the decoder has no
    padding mask, so only equal lengths can share a batch). If a group is rejected (ids out of
    range), its items are decoded one by one so that only the bad request gets the ValueError.
    """
    by_length: dict[int, list[int]] = {}
    for index, (_, semantic) in enumerate(items):
        by_length.setdefault(len(semantic), []).append(index)
    out: list[np.ndarray | ValueError] = [ValueError("not decoded")] * len(items)

    def decode(indices: list[int]) -> None:
        global_batch = torch.from_numpy(np.stack([items[i][0] for i in indices]))
        semantic_batch = torch.from_numpy(np.stack([items[i][1] for i in indices]))
        audio = np.asarray(tokenizer.detokenize(global_batch, semantic_batch), dtype=np.float32)
        for row, index in enumerate(indices):
            out[index] = audio[row].reshape(-1)

    for indices in by_length.values():
        try:
            decode(indices)
        except ValueError as exc:
            if len(indices) == 1:
                out[indices[0]] = exc
                continue
            for index in indices:
                try:
                    decode([index])
                except ValueError as single:
                    out[index] = single
    return out
