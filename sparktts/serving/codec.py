"""BiCodec as the ``audio_tokenizer`` and ``vocoder`` models run it: batched, per-request errors."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from sparktts import prompts
from sparktts.serving.inputs import model_parameters, required_parameter, token_row
from sparktts.serving.placement import codec_placement, instance_parameters

if TYPE_CHECKING:
    from sparktts.audio_tokenizer import BiCodecTokenizer

logger = logging.getLogger(__name__)

Tokens = tuple[np.ndarray, np.ndarray]  # global (32,) int32, semantic (T,) int32


def load_codec(
    model_config: str | Mapping, *, with_encoder: bool, with_decoder: bool, instance: Mapping[str, object] | None = None
) -> BiCodecTokenizer:
    """The BiCodec half a model needs, from its config's ``model_dir`` / ``device`` / ``dtype`` parameters
    (the tokenizer drops the decoder, the vocoder the encoder and wav2vec2); always float32 (``codec_placement``). ``instance``: Triton's
    ``initialize`` args, whose KIND_GPU device id pins the instance to its card (``instance_parameters``)."""
    from sparktts.audio_tokenizer import BiCodecTokenizer

    parameters = instance_parameters(model_parameters(model_config), instance or {})
    model_dir = required_parameter(parameters, "model_dir")
    device, dtype = codec_placement(parameters)
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
    """(global (32,), semantic (T,)) pairs -> (320 * T,) float32 waveforms (16 kHz), in order.

    Each request is decoded alone, never stacked with the others of its dynamic batch: a batch of
    two convolves with other kernels than a batch of one (oneDNN picks them by shape), which moved
    samples by a float ulp and, after int16 rounding, made a seeded request's audio depend on
    which requests happened to arrive with it. A request with ids out of range gets its ValueError;
    the others are unaffected.
    """
    out: list[np.ndarray | ValueError] = []
    for global_tokens, semantic_tokens in items:
        try:
            audio = tokenizer.detokenize(torch.from_numpy(global_tokens[None]), torch.from_numpy(semantic_tokens[None]))
        except ValueError as exc:
            out.append(exc)
            continue
        out.append(np.asarray(audio, dtype=np.float32).reshape(-1))
    return out
