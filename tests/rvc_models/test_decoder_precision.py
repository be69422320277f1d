"""The reduced-precision decoder: bf16 convolutions, with the last stage's stream and conv_post in float32.

Tiny widths with the official kernels and rates (as test_decoder_windows). Emulated bf16 on a CPU
without native support gives the same rounding as native, so the error checks hold everywhere.
"""

from __future__ import annotations

import math

import pytest
import torch

from rvc.infer.generator import HiFiGanGenerator, NsfGenerator
from rvc.infer.nsf import NoiseSource
from rvc.infer.synthesizer import Synthesizer

from .conftest import tiny_config


def _decoder(sample_rate: int, *, if_f0: bool, resblock: str) -> HiFiGanGenerator:
    torch.manual_seed(0)
    config = tiny_config("v2", sample_rate, if_f0=if_f0)
    if resblock == "2":
        config = config.replace(resblock="2", resblock_dilation_sizes=((1, 3), (1, 3), (1, 3)))
    return Synthesizer(config).dec.eval()


def _decode(dec: HiFiGanGenerator, frames: int = 60) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    z = torch.randn(1, 4, frames, generator=generator)
    g = torch.randn(1, 4, 1, generator=generator)
    f0 = 120 + 80 * torch.rand(1, frames, generator=generator)
    with torch.inference_mode():
        if isinstance(dec, NsfGenerator):
            return dec(z, g, f0=f0, noise=NoiseSource(deterministic=True)).double()
        return dec(z, g).double()


def _rms_db(error: torch.Tensor, reference: torch.Tensor) -> float:
    return 20 * math.log10(float(error.pow(2).mean().sqrt() / reference.pow(2).mean().sqrt()))


@pytest.mark.parametrize("sample_rate", [32000, 40000, 48000])
@pytest.mark.parametrize(("if_f0", "resblock"), [(True, "1"), (True, "2"), (False, "1")])
def test_a_float32_tail_cuts_the_bf16_error(sample_rate: int, if_f0: bool, resblock: str) -> None:
    dec = _decoder(sample_rate, if_f0=if_f0, resblock=resblock)
    exact = _decode(dec)
    dec.autocast_dtype = torch.bfloat16
    dec.float32_tail = False
    all_bf16 = _rms_db(_decode(dec) - exact, exact)
    dec.float32_tail = True
    tail = _decode(dec)
    assert tail.dtype == exact.dtype and tail.shape == exact.shape
    assert tail.ne(exact).any()  # the other stages still ran in bf16
    assert _rms_db(tail - exact, exact) < all_bf16 - 1.0  # tiny widths: 1.8-13 dB here; 12 dB at full size


def test_float32_decoding_ignores_the_tail_switch() -> None:
    dec = _decoder(40000, if_f0=True, resblock="1")
    dec.float32_tail = False
    before = _decode(dec)
    dec.float32_tail = True
    assert torch.equal(_decode(dec), before)


def test_only_the_last_stage_and_conv_post_see_float32_inputs_under_bf16() -> None:
    dec = _decoder(40000, if_f0=True, resblock="1")
    assert isinstance(dec, NsfGenerator)
    dec.autocast_dtype = torch.bfloat16
    seen: dict[str, torch.dtype] = {}
    last = len(dec.ups) - 1
    watched = {"conv_post": dec.conv_post, "last source conv": dec.noise_convs[last],
               "first source conv": dec.noise_convs[0], f"ups.{last}": dec.ups[last]}  # fmt: skip
    for name, module in watched.items():
        module.register_forward_hook(lambda _m, _i, out, name=name: seen.__setitem__(name, out.dtype))
    _decode(dec)
    assert seen == {"conv_post": torch.float32, "last source conv": torch.float32,
                    "first source conv": torch.bfloat16, f"ups.{last}": torch.bfloat16}  # fmt: skip
