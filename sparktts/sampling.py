"""Next-token selection that reproduces transformers' ``generate`` sampling bit for bit, cheaper.

The official Spark-TTS run samples with HF ``generate(do_sample=True, temperature, top_k, top_p)``:
logits (float32) -> ``scores / temperature`` -> top-k (drop ``scores < kth largest``) -> top-p
(sort ascending, ``softmax().cumsum()``, drop ``cumsum <= 1 - top_p`` except the last) ->
``softmax`` -> ``torch.multinomial(probs, 1)``. Seeded runs are only reproducible when the same
float arrays reach the same random calls, so this module keeps every array that feeds a
reduction or a random draw identical to HF's:

* the top-p step of HF sorts the whole vocabulary (166,000 rows for the real model), which is the
  bulk of its ~6.5 ms per step. After top-k, that sorted array is exactly ``[-inf] * (V - n)``
  followed by the ``n`` surviving scores in ascending order, so we build it from the ``n``
  survivors instead of sorting; its softmax and cumsum are then the same arrays HF computes.
* the final ``softmax`` and ``multinomial`` run on a full-vocabulary row, so the random stream
  (one exponential draw per vocabulary row) is consumed exactly as in HF.

Only exactly tied scores straddling the top-p cut could be ordered differently from HF's sort
(the kept *values* are still identical). Rows are handled one at a time so that every row can
own its ``torch.Generator`` (a seeded request in a batch draws the same numbers as alone).
Unseeded rows (nothing to reproduce) skip the full-vocabulary draw: same distribution, ~7x cheaper.
"""

from __future__ import annotations

import torch


def _top_p_from_survivors(scores: torch.Tensor, keep: torch.Tensor, top_p: float) -> torch.Tensor:
    """scores: (1, V) float32 after temperature; keep: (1, V) bool top-k survivors -> (1, V) filtered."""
    kept_index = keep[0].nonzero().squeeze(1)
    kept_values = scores[0, kept_index]
    ascending = torch.argsort(kept_values)
    count = kept_index.numel()
    sorted_logits = torch.full_like(scores, float("-inf"))
    sorted_logits[0, scores.shape[1] - count :] = kept_values[ascending]
    cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    remove_sorted = cumulative <= (1 - top_p)
    remove_sorted[..., -1:] = 0
    survivors = kept_index[ascending][~remove_sorted[0, scores.shape[1] - count :]]
    out = torch.full_like(scores, float("-inf"))
    out[0, survivors] = scores[0, survivors]
    return out


def _top_p_full_sort(scores: torch.Tensor, top_p: float) -> torch.Tensor:
    """HF's TopPLogitsWarper as is (used when top-k is off, so there are no survivors to reuse)."""
    sorted_logits, sorted_indices = torch.sort(scores, descending=False)
    cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    remove_sorted = cumulative <= (1 - top_p)
    remove_sorted[..., -1:] = 0
    remove = remove_sorted.scatter(1, sorted_indices, remove_sorted)
    return scores.masked_fill(remove, float("-inf"))


def warp_scores(logits: torch.Tensor, temperature: float, top_k: int, top_p: float) -> torch.Tensor:
    """logits: (1, V) float32 -> (1, V) float32 scores with -inf outside the sampling set (HF order)."""
    scores = logits / temperature if temperature != 1.0 else logits
    if top_k:
        kth = torch.topk(scores, min(top_k, scores.shape[-1]))[0][..., -1, None]
        below = scores < kth
        if top_p < 1.0:
            return _top_p_from_survivors(scores, ~below, top_p)
        return scores.masked_fill(below, float("-inf"))
    if top_p < 1.0:
        return _top_p_full_sort(scores, top_p)
    return scores


def compact_distribution(logits: torch.Tensor, temperature: float, top_k: int, top_p: float) -> tuple[torch.Tensor, torch.Tensor]:
    """HF's sampling distribution over its candidates only: (token ids (n,), probabilities (n,)).

    logits: (1, V) float32, top_k >= 1. Equal to ``softmax(warp_scores(...))`` on those ids up to
    float rounding (the softmax sums run over n values instead of V).
    """
    scores = logits[0] / temperature if temperature != 1.0 else logits[0]
    kth = torch.topk(scores, min(top_k, scores.shape[-1]))[0][-1]
    index = (scores >= kth).nonzero().squeeze(1)  # HF keeps every score tied with the k-th
    values, order = torch.sort(scores[index])
    if top_p < 1.0:
        remove = values.softmax(dim=-1).cumsum(dim=-1) <= (1 - top_p)
        remove[-1] = False
        values, order = values[~remove], order[~remove]
    return index[order], values.softmax(dim=-1)


def sample_row(
    logits: torch.Tensor,
    *,
    do_sample: bool,
    temperature: float,
    top_k: int,
    top_p: float,
    generator: torch.Generator | None,
) -> int:
    """Pick the next token of one sequence. logits: (1, V) float32 over the whole vocabulary.

    With a generator (a seeded request) the draw is HF's, bit for bit: one exponential per
    vocabulary row (3 ms of the ~5 ms per step at 166k rows). Without one nothing can be
    reproduced anyway, so the same distribution is sampled over the top-k candidates only.
    """
    if not do_sample:
        return int(torch.argmax(logits, dim=-1)[0])
    if generator is None and top_k:
        index, probs = compact_distribution(logits, temperature, top_k, top_p)
        return int(index[torch.multinomial(probs, num_samples=1)])
    probs = torch.softmax(warp_scores(logits, temperature, top_k, top_p), dim=-1)
    return int(torch.multinomial(probs, num_samples=1, generator=generator)[0, 0])
