"""The sampler is bit-identical to transformers' warpers + softmax + multinomial."""

from __future__ import annotations

import pytest
import torch
from transformers.generation.logits_process import (
    LogitsProcessorList,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from sparktts.sampling import compact_distribution, sample_row, warp_scores


def _hf_scores(logits: torch.Tensor, temperature: float, top_k: int, top_p: float) -> torch.Tensor:
    chain = LogitsProcessorList()
    if temperature != 1.0:
        chain.append(TemperatureLogitsWarper(temperature))
    if top_k:
        chain.append(TopKLogitsWarper(top_k))
    if top_p < 1.0:
        chain.append(TopPLogitsWarper(top_p))
    return chain(torch.zeros(1, 1, dtype=torch.long), logits)


def _logits(vocab: int, seed: int, scale: float) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(1, vocab, generator=generator) * scale
    logits[0, :7] = logits[0, 7]  # a run of exact ties
    return logits


@pytest.mark.parametrize(
    ("temperature", "top_k", "top_p"),
    [(0.8, 50, 0.95), (1.0, 50, 0.95), (0.8, 0, 0.95), (0.8, 50, 1.0), (1.3, 5, 0.5), (0.7, 20000, 0.9)],
)
def test_warped_scores_and_samples_equal_transformers(temperature: float, top_k: int, top_p: float) -> None:
    for seed, scale in [(0, 1.0), (1, 4.0), (2, 0.05)]:
        logits = _logits(16000, seed, scale)
        ours = warp_scores(logits, temperature, top_k, top_p)
        theirs = _hf_scores(logits, temperature, top_k, top_p)
        assert torch.equal(ours, theirs)
        probs = torch.softmax(theirs, dim=-1)
        ours_gen, theirs_gen = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
        for _ in range(5):
            expected = int(torch.multinomial(probs, num_samples=1, generator=theirs_gen)[0, 0])
            got = sample_row(logits, do_sample=True, temperature=temperature, top_k=top_k, top_p=top_p,
                             generator=ours_gen)
            assert got == expected


def test_greedy_is_the_first_argmax() -> None:
    logits = torch.tensor([[0.0, 3.0, 3.0, 1.0]])
    assert sample_row(logits, do_sample=False, temperature=0.8, top_k=50, top_p=0.95, generator=None) == 1


@pytest.mark.parametrize(("temperature", "top_k", "top_p"), [(0.8, 50, 0.95), (1.0, 5, 1.0), (1.3, 20000, 0.5)])
def test_unseeded_rows_sample_the_same_distribution_over_fewer_rows(temperature, top_k, top_p) -> None:
    for seed, scale in [(0, 1.0), (1, 4.0), (2, 0.05)]:
        logits = _logits(16000, seed, scale)
        index, probs = compact_distribution(logits, temperature, top_k, top_p)
        full = torch.softmax(_hf_scores(logits, temperature, top_k, top_p), dim=-1)[0]
        assert set(index.tolist()) == set(full.nonzero().squeeze(1).tolist())
        torch.testing.assert_close(probs, full[index], rtol=1e-5, atol=1e-7)
        torch.manual_seed(seed)
        draws = [sample_row(logits, do_sample=True, temperature=temperature, top_k=top_k, top_p=top_p,
                            generator=None) for _ in range(20)]
        assert set(draws) <= set(index.tolist())
