"""RMVPE's E2E network: a deep U-Net over the log-mel image, then a BiGRU and a 360-bin head.

The module tree mirrors the checkpoint keys of the official ``rmvpe.pt``
(``unet.encoder.layers.{i}.conv.{j}.conv.{0,1,3,4}``, ``…shortcut``,
``unet.decoder.layers.{i}.conv1.{0,1}``, ``cnn``, ``fc.0.gru``, ``fc.1``), so a
state dict loads with strict key checking and no renaming table.

Layout: the mel ``(B, 128, T)`` becomes an image ``(B, 1, T, 128)`` (time is the
height axis); T must be a multiple of 2**en_de_layers because every encoder level
halves both axes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch
from torch import nn

__all__ = ["N_CLASSES", "N_MELS", "E2E", "RMVPEConfig"]

N_MELS = 128
N_CLASSES = 360
_GRU_HIDDEN = 256


@dataclass(frozen=True)
class RMVPEConfig:
    """Architecture of an E2E network; defaults are the released ``rmvpe.pt`` (E2E(4, 1, (2, 2)))."""

    n_blocks: int = 4
    n_gru: int = 1
    kernel_size: tuple[int, int] = (2, 2)
    en_de_layers: int = 5
    inter_layers: int = 4
    in_channels: int = 1
    en_out_channels: int = 16

    def __post_init__(self) -> None:
        for name in ("n_blocks", "n_gru", "en_de_layers", "inter_layers", "in_channels", "en_out_channels"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"RMVPEConfig.{name} must be a positive int, got {value!r}")
        if len(self.kernel_size) != 2 or any(k < 1 for k in self.kernel_size):
            raise ValueError(f"RMVPEConfig.kernel_size must be two positive ints, got {self.kernel_size!r}")
        if N_MELS % (self.kernel_size[1] ** self.en_de_layers):
            raise ValueError(
                f"RMVPEConfig: {self.en_de_layers} pooling levels of {self.kernel_size} do not divide {N_MELS} mels"
            )

    @property
    def time_multiple(self) -> int:
        """Frames are zero-padded to a multiple of this before the U-Net."""
        return self.kernel_size[0] ** self.en_de_layers


class ConvBlockRes(nn.Module):
    """Two 3x3 conv-BN-ReLU layers plus a residual (1x1 conv when the channel count changes)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels, momentum=0.01),
            nn.ReLU(),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels, momentum=0.01),
            nn.ReLU(),
        )
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.shortcut is None else self.shortcut(x)
        return self.conv(x) + residual


class ResEncoderBlock(nn.Module):
    """``n_blocks`` ConvBlockRes, optionally followed by average pooling (encoder levels only)."""

    def __init__(
        self, in_channels: int, out_channels: int, n_blocks: int, pool: tuple[int, int] | None
    ) -> None:
        super().__init__()
        blocks = [ConvBlockRes(in_channels, out_channels)]
        blocks += [ConvBlockRes(out_channels, out_channels) for _ in range(n_blocks - 1)]
        self.conv = nn.ModuleList(blocks)
        self.pool = nn.AvgPool2d(pool) if pool is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.conv:
            x = block(x)
        return x


class Encoder(nn.Module):
    def __init__(self, config: RMVPEConfig) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(config.in_channels, momentum=0.01)
        layers = []
        in_channels, out_channels = config.in_channels, config.en_out_channels
        for _ in range(config.en_de_layers):
            layers.append(ResEncoderBlock(in_channels, out_channels, config.n_blocks, config.kernel_size))
            in_channels, out_channels = out_channels, out_channels * 2
        self.layers = nn.ModuleList(layers)
        self.out_channels = in_channels

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Returns the pooled bottom and the pre-pool tensor of every level (the skips)."""
        x = self.bn(x)
        skips = []
        for module in self.layers:
            layer = cast(ResEncoderBlock, module)
            x = layer(x)
            skips.append(x)
            if layer.pool is not None:  # every encoder level pools
                x = layer.pool(x)
        return x, skips


class Intermediate(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, n_layers: int, n_blocks: int) -> None:
        super().__init__()
        layers = [ResEncoderBlock(in_channels, out_channels, n_blocks, None)]
        layers += [ResEncoderBlock(out_channels, out_channels, n_blocks, None) for _ in range(n_layers - 1)]
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class ResDecoderBlock(nn.Module):
    """Transposed-conv x2 upsampling, concatenation with the encoder skip, then ConvBlockRes."""

    def __init__(self, in_channels: int, out_channels: int, stride: tuple[int, int], n_blocks: int) -> None:
        super().__init__()
        output_padding = (0, 1) if tuple(stride) == (1, 2) else (1, 1)
        self.conv1 = nn.Sequential(
            nn.ConvTranspose2d(
                in_channels,
                out_channels,
                3,
                stride=stride,
                padding=1,
                output_padding=output_padding,
                bias=False,
            ),
            nn.BatchNorm2d(out_channels, momentum=0.01),
            nn.ReLU(),
        )
        blocks = [ConvBlockRes(out_channels * 2, out_channels)]
        blocks += [ConvBlockRes(out_channels, out_channels) for _ in range(n_blocks - 1)]
        self.conv2 = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv2(torch.cat((self.conv1(x), skip), dim=1))


class Decoder(nn.Module):
    def __init__(self, in_channels: int, config: RMVPEConfig) -> None:
        super().__init__()
        layers = []
        for _ in range(config.en_de_layers):
            layers.append(ResDecoderBlock(in_channels, in_channels // 2, config.kernel_size, config.n_blocks))
            in_channels //= 2
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        for layer, skip in zip(self.layers, reversed(skips), strict=True):
            x = layer(x, skip)
        return x


class DeepUnet(nn.Module):
    def __init__(self, config: RMVPEConfig) -> None:
        super().__init__()
        self.encoder = Encoder(config)
        bottom = self.encoder.out_channels
        self.intermediate = Intermediate(bottom, bottom * 2, config.inter_layers, config.n_blocks)
        self.decoder = Decoder(bottom * 2, config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, skips = self.encoder(x)
        return self.decoder(self.intermediate(x), skips)


class BiGRU(nn.Module):
    def __init__(self, input_features: int, hidden_features: int, num_layers: int) -> None:
        super().__init__()
        self.gru = nn.GRU(
            input_features, hidden_features, num_layers=num_layers, batch_first=True, bidirectional=True
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gru(x)[0]


class E2E(nn.Module):
    """log-mel ``(B, 128, T)`` float32 -> salience ``(B, T, 360)`` in (0, 1).

    T must be a multiple of ``config.time_multiple`` (32 for the released model).
    """

    def __init__(self, config: RMVPEConfig) -> None:
        super().__init__()
        self.config = config
        self.unet = DeepUnet(config)
        self.cnn = nn.Conv2d(config.en_out_channels, 3, 3, padding=1)
        # Dropout (index 2 in the official head) is the identity at inference and holds no keys.
        self.fc = nn.Sequential(
            BiGRU(3 * N_MELS, _GRU_HIDDEN, config.n_gru),
            nn.Linear(2 * _GRU_HIDDEN, N_CLASSES),
            nn.Dropout(0.25),
            nn.Sigmoid(),
        )

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        image = mel.transpose(-1, -2).unsqueeze(1)
        features = self.cnn(self.unet(image))  # (B, 3, T, 128)
        # channel-major flattening: feature index = channel * 128 + mel bin
        features = features.transpose(1, 2).flatten(-2)
        return self.fc(features)
