"""RVC's waveform decoders: HiFi-GAN (``Generator``, no-f0 voices) and its NSF variant (f0 voices).

Input is the flow latent z (B, inter, T) at 100 frames/s; output is audio (B, 1, T·hop) in
[-1, 1] at the voice's sample rate, hop = product of the upsample rates (320/400/480 for
32/40/48 kHz). The NSF decoder adds, after every upsampling stage, a strided conv of the f0
source signal at that stage's rate. This stage dominates CPU time (about 90% of a conversion).

Under a reduced-precision autocast most of the error comes from the last stage: ``conv_post``
sums 32 channels x 7 taps into one sample that is far smaller than its terms, so rounding its
input to bfloat16 alone costs about as much as every other layer together. ``float32_tail``
(default) keeps that stage's residual stream, its source conv and ``conv_post`` in float32 while
its convolutions stay reduced: a small share of the work for most of the accuracy
(``bench/bench_rvc.py --bf16`` prints both layouts).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from rvc.infer.nsf import NoiseSource, SourceModule
from rvc.infer.planar import PlanarConv1d, from_planar, to_planar
from rvc.infer.synthesizer_config import SynthesizerConfig
from rvc.infer.weight_norm import WeightNormConv1d, WeightNormConvTranspose1d

__all__ = ["HiFiGanGenerator", "NsfGenerator", "ResBlock1", "ResBlock2"]

LRELU_SLOPE = 0.1
DEFAULT_WINDOW_FRAMES = 400  # 4 s; 200-600 measured within 10% of each other


def _dilated_convs(channels: int, kernel_size: int, dilations: Sequence[int]) -> nn.ModuleList:
    """Length-preserving weight-normed convs, one per dilation."""
    return nn.ModuleList(
        WeightNormConv1d(channels, channels, kernel_size, dilation=d, padding=(kernel_size * d - d) // 2)
        for d in dilations
    )


def _same(x: torch.Tensor) -> torch.Tensor:
    return x


def _half_width(layer: nn.Conv1d) -> int:
    return (layer.kernel_size[0] - 1) * layer.dilation[0] // 2 + 1


class ResBlock1(nn.Module):
    """Three (dilated conv, conv) pairs with leaky-ReLU pre-activations and residual adds."""

    def __init__(self, channels: int, kernel_size: int, dilations: Sequence[int]) -> None:
        super().__init__()
        self.convs1 = _dilated_convs(channels, kernel_size, dilations)
        self.convs2 = _dilated_convs(channels, kernel_size, [1] * len(dilations))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv1, conv2 in zip(self.convs1, self.convs2, strict=True):
            residual = conv1(F.leaky_relu(x, LRELU_SLOPE))
            x = x + conv2(F.leaky_relu(residual, LRELU_SLOPE))
        return x

    def half_width(self) -> int:
        """Samples on each side of an output sample that reach it through this block."""
        return sum(_half_width(c) for c in (*self.convs1, *self.convs2))


class ResBlock2(nn.Module):
    """Two dilated convs with leaky-ReLU pre-activations and residual adds."""

    def __init__(self, channels: int, kernel_size: int, dilations: Sequence[int]) -> None:
        super().__init__()
        self.convs = _dilated_convs(channels, kernel_size, dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.convs:
            x = x + layer(F.leaky_relu(x, LRELU_SLOPE))
        return x

    def half_width(self) -> int:
        """Samples on each side of an output sample that reach it through this block."""
        return sum(_half_width(cast(nn.Conv1d, conv)) for conv in self.convs)


class HiFiGanGenerator(nn.Module):
    """The plain HiFi-GAN decoder; parameters ``conv_pre``, ``ups``, ``resblocks``, ``conv_post``, ``cond``."""

    def __init__(self, config: SynthesizerConfig) -> None:
        """The decoder part of ``config``: input width ``inter_channels``, the resblock and upsample lists."""
        super().__init__()
        self.num_kernels = len(config.resblock_kernel_sizes)
        self.upsample = math.prod(config.upsample_rates)
        self.conv_pre = PlanarConv1d(config.inter_channels, config.upsample_initial_channel, 7, 1, padding=3)
        block = ResBlock1 if config.resblock == "1" else ResBlock2
        self.ups = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        channels = config.upsample_initial_channel
        for rate, kernel in zip(config.upsample_rates, config.upsample_kernel_sizes, strict=True):
            self.ups.append(
                WeightNormConvTranspose1d(channels, channels // 2, kernel, rate, padding=(kernel - rate) // 2)
            )
            channels //= 2
            for kernel_size, dilations in zip(
                config.resblock_kernel_sizes, config.resblock_dilation_sizes, strict=True
            ):
                self.resblocks.append(block(channels, kernel_size, dilations))
        self.conv_post = PlanarConv1d(channels, 1, 7, 1, padding=3, bias=False)
        self.cond = PlanarConv1d(config.gin_channels, config.upsample_initial_channel, 1)
        # Frames per decoding window (0: one pass over the whole input); see the module docstring.
        self.window_frames = DEFAULT_WINDOW_FRAMES
        self.planar = True  # False: the reference's (B, C, T) 1-D convolutions (benchmark baselines)
        # None: float32 throughout (the reference's CPU path). bfloat16 / float16: the windows'
        # convolutions run under autocast in that type (an opt-in trade, see VoiceConverter).
        self.autocast_dtype: torch.dtype | None = None
        # With autocast_dtype: the last stage's stream, source conv and conv_post in float32.
        self.float32_tail = True
        self.margin_frames = math.ceil(self.receptive_field_frames()) + 2

    def receptive_field_frames(self) -> float:
        """An upper bound on how many input frames on each side of a frame reach its output samples."""
        frames: float = _half_width(self.conv_pre)
        rate = 1  # samples per frame before stage i
        for i, module in enumerate(self.ups):
            up = cast(nn.ConvTranspose1d, module)
            frames += math.ceil(up.kernel_size[0] / up.stride[0]) / rate
            rate *= up.stride[0]
            blocks = self.resblocks[i * self.num_kernels : (i + 1) * self.num_kernels]
            frames += max(cast(ResBlock1 | ResBlock2, block).half_width() for block in blocks) / rate
        return frames + _half_width(self.conv_post) / rate

    def _windows(self, frames: int) -> list[tuple[int, int, int, int]]:
        """(window start, window end, kept start, kept end) in frames.

        Inputs up to one window plus margins take one pass. Longer ones are cut into as few
        windows of at most ``window_frames`` kept frames as cover them, evenly, so the margins
        are all the extra work; every window of one input has one size.
        """
        margin = self.margin_frames
        if self.window_frames <= 0 or frames <= self.window_frames + 2 * margin:
            return [(0, frames, 0, frames)]
        count = math.ceil(frames / self.window_frames)
        kept = math.ceil(frames / count)
        size = kept + 2 * margin
        windows = []
        for kept_start in range(0, frames, kept):
            start = min(max(0, kept_start - margin), frames - size)
            windows.append((start, start + size, kept_start, min(frames, kept_start + kept)))
        return windows

    def _add_source(self, stage: int, x: torch.Tensor, source: torch.Tensor | None) -> torch.Tensor:
        return x

    def _stage(self, i: int, x: torch.Tensor, source: torch.Tensor | None) -> torch.Tensor:
        x = self.ups[i](F.leaky_relu(x, LRELU_SLOPE))
        if self._in_float32_tail(i):
            # The resblocks' convs still autocast; their residual adds then promote to float32.
            with torch.autocast(x.device.type, enabled=False):
                x = self._add_source(i, x.float(), source)
        else:
            x = self._add_source(i, x, source)
        blocks = self.resblocks[i * self.num_kernels : (i + 1) * self.num_kernels]
        total = blocks[0](x)
        for block in blocks[1:]:
            total = total + block(x)
        return total / self.num_kernels

    def _decode_window(self, z: torch.Tensor, g: torch.Tensor, source: torch.Tensor | None) -> torch.Tensor:
        """z and source (planar (B, C, 1, T) or (B, C, T)) -> audio (B, 1, [1,] T·hop) alike."""
        x = self.conv_pre(z) + self.cond(g)
        for i in range(len(self.ups)):
            x = self._stage(i, x, source)
        # The final activation uses torch's default slope 0.01, unlike every other one (0.1).
        full = torch.autocast(x.device.type, enabled=False)
        with full if self._in_float32_tail(len(self.ups) - 1) else contextlib.nullcontext():
            return torch.tanh(self.conv_post(F.leaky_relu(x)))

    def _in_float32_tail(self, stage: int) -> bool:
        return self.autocast_dtype is not None and self.float32_tail and stage == len(self.ups) - 1

    def _decode(self, z: torch.Tensor, g: torch.Tensor, source: torch.Tensor | None) -> torch.Tensor:
        hop = self.upsample
        into, out_of = (to_planar, from_planar) if self.planar else (_same, _same)
        g = into(g)
        pieces = []
        dtype = self.autocast_dtype
        with torch.autocast(z.device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            for start, end, kept_start, kept_end in self._windows(z.shape[-1]):
                window_source = None if source is None else into(source[..., start * hop : end * hop])
                audio = self._decode_window(into(z[..., start:end]), g, window_source)
                pieces.append(audio[..., (kept_start - start) * hop : (kept_end - start) * hop].float())
        return out_of(pieces[0] if len(pieces) == 1 else torch.cat(pieces, dim=-1))

    def forward(
        self,
        z: torch.Tensor,
        g: torch.Tensor,
        *,
        frames_out: int | None = None,
    ) -> torch.Tensor:
        """z: (B, inter, T); g: (B, gin, 1) -> audio (B, 1, T'·hop), T' = frames_out or T.

        ``frames_out`` linearly resamples z to that many frames first (the realtime formant shift).
        """
        if frames_out is not None and frames_out != z.shape[-1]:
            z = F.interpolate(z, size=frames_out, mode="linear")
        return self._decode(z, g, None)


class NsfGenerator(HiFiGanGenerator):
    """HiFi-GAN plus the NSF source: adds ``m_source`` and one ``noise_convs`` conv per stage."""

    def __init__(self, config: SynthesizerConfig) -> None:
        super().__init__(config)
        self.m_source = SourceModule(config.sample_rate)
        self.noise_convs = nn.ModuleList()
        upsample_rates = config.upsample_rates
        for i in range(len(upsample_rates)):
            channels = config.upsample_initial_channel // 2 ** (i + 1)
            stride = math.prod(upsample_rates[i + 1 :])
            if i + 1 < len(upsample_rates):
                self.noise_convs.append(
                    PlanarConv1d(1, channels, 2 * stride, stride=stride, padding=stride // 2)
                )
            else:
                self.noise_convs.append(PlanarConv1d(1, channels, 1))

    def _add_source(self, stage: int, x: torch.Tensor, source: torch.Tensor | None) -> torch.Tensor:
        return x + self.noise_convs[stage](source)

    def forward(  # type: ignore[override]  # the NSF decoder needs f0 and a noise source; the plain one takes neither
        self,
        z: torch.Tensor,
        g: torch.Tensor,
        *,
        f0: torch.Tensor,
        noise: NoiseSource,
        frames_out: int | None = None,
    ) -> torch.Tensor:
        """z: (B, inter, T); f0: (B, T) Hz; g: (B, gin, 1) -> audio (B, 1, T'·hop).

        With ``frames_out`` the source (T·hop samples) and z are linearly resampled to
        frames_out·hop samples and frames_out frames.
        """
        source = self.m_source(f0, self.upsample, noise)
        if frames_out is not None:
            if frames_out * self.upsample != source.shape[-1]:
                source = F.interpolate(source, size=frames_out * self.upsample, mode="linear")
            if frames_out != z.shape[-1]:
                z = F.interpolate(z, size=frames_out, mode="linear")
        return self._decode(z, g, source)
