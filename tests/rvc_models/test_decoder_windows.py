"""Windowed decoding: the margin covers the decoder's receptive field, and windows change nothing.

Every official upsampling layout (v1/v2 x 32/40/48 kHz, NSF and plain) with tiny widths: the
kernels and rates, which set the receptive field, are the real ones.
"""

from __future__ import annotations

import itertools

import pytest
import torch

from rvc.infer.generator import HiFiGanGenerator, NsfGenerator
from rvc.infer.nsf import NoiseSource
from rvc.infer.synthesizer import Synthesizer

from .conftest import tiny_config

LAYOUTS = list(itertools.product(("v1", "v2"), (32000, 40000, 48000)))


def _decoder(version: str, sample_rate: int, *, if_f0: bool = True, resblock: str = "1") -> HiFiGanGenerator:
    torch.manual_seed(0)
    config = tiny_config(version, sample_rate, if_f0=if_f0)
    if resblock == "2":
        config = config.replace(resblock="2", resblock_dilation_sizes=((1, 3), (1, 3), (1, 3)))
    return Synthesizer(config).dec.eval()


def _decode(dec: HiFiGanGenerator, z: torch.Tensor, f0: torch.Tensor) -> torch.Tensor:
    g = torch.randn(1, 4, 1, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        if isinstance(dec, NsfGenerator):
            return dec(z, g, f0=f0, noise=NoiseSource(deterministic=True))
        return dec(z, g)


def _inputs(frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    z = torch.randn(1, 4, frames, generator=generator)
    f0 = 120 + 80 * torch.rand(1, frames, generator=generator)
    f0[:, frames // 3 : frames // 3 + 5] = 0.0  # an unvoiced stretch
    return z, f0


@pytest.mark.parametrize(("version", "sample_rate"), LAYOUTS)
@pytest.mark.parametrize("resblock", ["1", "2"])
def test_margin_covers_the_receptive_field(version: str, sample_rate: int, resblock: str) -> None:
    dec = _decoder(version, sample_rate, resblock=resblock)
    dec.window_frames = 0
    frames, hit, hop = 80, 40, dec.upsample
    z, f0 = _inputs(frames)
    before = _decode(dec, z, f0)
    z[..., hit] += 1.0
    changed = torch.nonzero((_decode(dec, z, f0) - before).abs().flatten() > 0).flatten()
    assert changed.numel() > 0
    reach_left = hit - int(changed.min()) / hop
    reach_right = (int(changed.max()) + 1) / hop - (hit + 1)
    assert max(reach_left, reach_right) <= dec.receptive_field_frames() < dec.margin_frames
    assert dec.receptive_field_frames() < 2 * max(reach_left, reach_right) + 2  # a bound, not a guess


@pytest.mark.parametrize(("version", "sample_rate"), LAYOUTS)
@pytest.mark.parametrize("if_f0", [True, False])
def test_windows_decode_like_one_pass(version: str, sample_rate: int, if_f0: bool) -> None:
    dec = _decoder(version, sample_rate, if_f0=if_f0)
    dec.window_frames = 24
    margin = dec.margin_frames
    for frames in (dec.window_frames + 2 * margin + 1, 3 * dec.window_frames + 7, 5 * dec.window_frames):
        windows = dec._windows(frames)
        assert len(windows) == -(-frames // dec.window_frames)  # as few as cover the input
        assert len({end - start for start, end, _, _ in windows}) == 1
        kept_ranges = [(kept_start, kept_end) for _, _, kept_start, kept_end in windows]
        assert kept_ranges[0][0] == 0 and kept_ranges[-1][1] == frames
        assert all(a[1] == b[0] for a, b in itertools.pairwise(kept_ranges))  # they tile the input
        for start, end, kept_start, kept_end in windows:
            assert 0 <= start and end <= frames and kept_end - kept_start <= dec.window_frames
            assert start == 0 or kept_start - start >= margin  # a margin wherever the input goes on
            assert end == frames or end - kept_end >= margin
        z, f0 = _inputs(frames)
        windowed = _decode(dec, z, f0)
        dec.window_frames, saved = 0, dec.window_frames
        whole = _decode(dec, z, f0)
        dec.window_frames = saved
        assert windowed.shape == whole.shape == (1, 1, frames * dec.upsample)
        assert float((windowed - whole).abs().max()) <= 1e-5


def test_short_input_is_one_window() -> None:
    dec = _decoder("v2", 40000)
    assert dec._windows(dec.window_frames + 2 * dec.margin_frames) == [
        (0, dec.window_frames + 2 * dec.margin_frames, 0, dec.window_frames + 2 * dec.margin_frames)
    ]
