"""Every synthesizer variant (v1/v2, f0/no-f0, 32k/40k/48k) builds, runs and round-trips a .pth."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch

from rvc.infer.synthesizer import Synthesizer, load_voice_checkpoint, save_voice_checkpoint

from .conftest import tiny_config

FRAMES = 12
VARIANTS = list(itertools.product(("v1", "v2"), (True, False), (32000, 40000, 48000)))


def _inputs(config, frames: int = FRAMES) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(3)
    phone = torch.randn(1, frames, config.content_dim, generator=generator)
    f0 = torch.linspace(100.0, 300.0, frames).unsqueeze(0)
    f0[:, 3:5] = 0.0
    pitch = torch.randint(1, 256, (1, frames), generator=generator)
    return phone, torch.tensor([frames]), pitch, f0, torch.tensor([1])


@pytest.mark.parametrize(("version", "if_f0", "sample_rate"), VARIANTS)
def test_variant_builds_runs_and_survives_a_pth_round_trip(
    version: str, if_f0: bool, sample_rate: int, tmp_path: Path
) -> None:
    torch.manual_seed(0)
    config = tiny_config(version, sample_rate, if_f0=if_f0)
    model = Synthesizer(config).eval()
    assert config.hop_length == sample_rate // 100
    phone, lengths, pitch, f0, sid = _inputs(config)
    if not if_f0:
        pitch = f0 = None
    audio = model.infer(phone, lengths, pitch, f0, sid, generator=torch.Generator().manual_seed(1))
    assert audio.shape == (1, 1, FRAMES * config.hop_length) and audio.dtype == torch.float32
    assert torch.isfinite(audio).all() and audio.abs().max() <= 1.0

    path = save_voice_checkpoint(model, tmp_path / "voice.pth", info="test")
    voice = load_voice_checkpoint(path)
    assert (voice.version, voice.if_f0, voice.sample_rate, voice.config) == (
        version,
        if_f0,
        sample_rate,
        config,
    )
    saved = torch.load(path, weights_only=True)
    assert set(saved) == {"weight", "config", "info", "sr", "f0", "version"}
    assert all(t.dtype == torch.float16 for t in saved["weight"].values())
    assert set(saved["weight"]) == set(model.checkpoint_layout())
    # fp16 storage changes the weights by ~1e-3 relative; the audio follows closely.
    before = model.infer(phone, lengths, pitch, f0, sid, deterministic=True)
    after = voice.model.infer(phone, lengths, pitch, f0, sid, deterministic=True)
    assert float((before - after).abs().max()) < 2e-2

    stream = voice.model.infer(
        phone, lengths, pitch, f0, sid, deterministic=True, skip_head=4, return_length=5
    )
    assert stream.shape == (1, 1, 5 * config.hop_length)


def test_batched_call_equals_single_calls() -> None:
    torch.manual_seed(0)
    config = tiny_config("v2", 40000, if_f0=True)
    model = Synthesizer(config).eval()
    first, second = _inputs(config), _inputs(config)
    second = (
        second[0] * 0.5,
        torch.tensor([FRAMES - 2]),
        second[2].flip(1),
        second[3] * 1.5,
        torch.tensor([2]),
    )
    batched = model.infer(
        *(torch.cat([a, b]) for a, b in zip(first, second, strict=True)), deterministic=True
    )
    torch.testing.assert_close(batched[:1], model.infer(*first, deterministic=True), atol=1e-5, rtol=0)
    torch.testing.assert_close(batched[1:], model.infer(*second, deterministic=True), atol=1e-5, rtol=0)


def test_long_input_keeps_relative_attention_band_exact() -> None:
    """Frames far apart (|j − i| > window) get no relative term: a delta input stays local."""
    from rvc.infer.attentions import RelativeSelfAttention

    torch.manual_seed(0)
    attention = RelativeSelfAttention(8, 2).eval()
    x = torch.randn(1, 8, 40)
    mask = torch.ones(1, 1, 40, 40)
    with torch.inference_mode():
        reference = _banded_attention_reference(attention, x)
        torch.testing.assert_close(attention(x, mask), reference, atol=1e-5, rtol=0)


def _banded_attention_reference(attention, x: torch.Tensor) -> torch.Tensor:
    """Direct O(T²) formula with an explicit |j − i| ≤ window band (docs/rvc_reference.md)."""
    length = x.shape[-1]
    heads, width, window = attention.n_heads, attention.head_channels, attention.window
    q = attention.conv_q(x).view(heads, width, length).transpose(1, 2) / width**0.5
    k = attention.conv_k(x).view(heads, width, length).transpose(1, 2)
    v = attention.conv_v(x).view(heads, width, length).transpose(1, 2)
    offsets = torch.arange(length).unsqueeze(0) - torch.arange(length).unsqueeze(1)  # j − i
    inside = offsets.abs() <= window
    index = (offsets + window).clamp(0, 2 * window)
    rel_k = attention.emb_rel_k[0][index] * inside.unsqueeze(-1)  # (T, T, d)
    rel_v = attention.emb_rel_v[0][index] * inside.unsqueeze(-1)
    scores = q @ k.transpose(1, 2) + torch.einsum("hid,ijd->hij", q, rel_k)
    probs = scores.softmax(-1)
    out = probs @ v + torch.einsum("hij,ijd->hid", probs, rel_v)
    return attention.conv_o(out.transpose(1, 2).reshape(1, heads * width, length))
