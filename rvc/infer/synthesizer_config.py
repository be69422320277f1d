"""Architecture of an RVC synthesizer, as stored positionally in a voice checkpoint's ``config`` list.

An official ``.pth`` holds 18 constructor arguments (docs/rvc_reference.md); the content width
(256 for v1, 768 for v2) and the decoder type (NSF with f0, or plain HiFi-GAN) are not in the list
but come from the checkpoint's ``version`` and ``f0`` entries, so they are fields here too.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["CONTENT_DIMS", "SAMPLE_RATE_NAMES", "SynthesizerConfig", "official_config"]

CONTENT_DIMS = {"v1": 256, "v2": 768}
SAMPLE_RATE_NAMES = {"32k": 32000, "40k": 40000, "48k": 48000}
CONFIG_LIST_LENGTH = 18

# (version, sample rate) -> (upsample_rates, upsample_kernel_sizes), from the official configs.
_OFFICIAL_UPSAMPLING: dict[tuple[str, int], tuple[tuple[int, ...], tuple[int, ...]]] = {
    ("v1", 32000): ((10, 4, 2, 2, 2), (16, 16, 4, 4, 4)),
    ("v1", 40000): ((10, 10, 2, 2), (16, 16, 4, 4)),
    ("v1", 48000): ((10, 6, 2, 2, 2), (16, 16, 4, 4, 4)),
    ("v2", 32000): ((10, 8, 2, 2), (20, 16, 4, 4)),
    ("v2", 40000): ((10, 10, 2, 2), (16, 16, 4, 4)),
    ("v2", 48000): ((12, 10, 2, 2), (24, 20, 4, 4)),
}


def _positive_ints(name: str, values: Sequence[Any]) -> tuple[int, ...]:
    if isinstance(values, str | bytes) or not isinstance(values, Sequence) or not values:
        raise ValueError(f"{name} must be a non-empty list of positive ints, got {values!r}")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values):
        raise ValueError(f"{name} must hold positive ints, got {list(values)!r}")
    return tuple(values)


@dataclass(frozen=True)
class SynthesizerConfig:
    """Hyperparameters of ``Synthesizer``; field names follow the reference constructor."""

    spec_channels: int
    segment_size: int
    inter_channels: int
    hidden_channels: int
    filter_channels: int
    n_heads: int
    n_layers: int
    kernel_size: int
    p_dropout: float
    resblock: str
    resblock_kernel_sizes: tuple[int, ...]
    resblock_dilation_sizes: tuple[tuple[int, ...], ...]
    upsample_rates: tuple[int, ...]
    upsample_initial_channel: int
    upsample_kernel_sizes: tuple[int, ...]
    spk_embed_dim: int
    gin_channels: int
    sample_rate: int
    version: str = "v2"
    if_f0: bool = True

    def __post_init__(self) -> None:
        for name in (
            "spec_channels", "segment_size", "inter_channels", "hidden_channels", "filter_channels",
            "n_heads", "n_layers", "kernel_size", "upsample_initial_channel", "spk_embed_dim",
            "gin_channels", "sample_rate",
        ):  # fmt: skip
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.version not in CONTENT_DIMS:
            raise ValueError(f"version must be one of {sorted(CONTENT_DIMS)}, got {self.version!r}")
        if not isinstance(self.if_f0, bool):
            raise ValueError(f"if_f0 must be a bool, got {self.if_f0!r}")
        if not isinstance(self.p_dropout, int | float) or not 0 <= self.p_dropout < 1:
            raise ValueError(f"p_dropout must be in [0, 1), got {self.p_dropout!r}")
        if self.hidden_channels % self.n_heads:
            raise ValueError(
                f"hidden_channels {self.hidden_channels} is not divisible by n_heads {self.n_heads}"
            )
        if self.inter_channels % 2:
            raise ValueError(
                f"inter_channels must be even (the flow splits it in halves), got {self.inter_channels}"
            )
        if self.resblock not in ("1", "2"):
            raise ValueError(f"resblock must be '1' or '2', got {self.resblock!r}")
        kernels = _positive_ints("resblock_kernel_sizes", self.resblock_kernel_sizes)
        if not isinstance(self.resblock_dilation_sizes, Sequence):
            raise ValueError(
                f"resblock_dilation_sizes must be a list of lists, got {self.resblock_dilation_sizes!r}"
            )
        dilations = tuple(_positive_ints("resblock_dilation_sizes", d) for d in self.resblock_dilation_sizes)
        if len(dilations) != len(kernels):
            raise ValueError(
                f"resblock_dilation_sizes has {len(dilations)} entries but resblock_kernel_sizes has {len(kernels)}"
            )
        per_block = 3 if self.resblock == "1" else 2
        if any(len(d) != per_block for d in dilations):
            raise ValueError(
                f"resblock {self.resblock!r} needs {per_block} dilations per kernel, got {[list(d) for d in dilations]}"
            )
        rates = _positive_ints("upsample_rates", self.upsample_rates)
        up_kernels = _positive_ints("upsample_kernel_sizes", self.upsample_kernel_sizes)
        if len(rates) != len(up_kernels):
            raise ValueError(
                f"upsample_rates {list(rates)} and upsample_kernel_sizes {list(up_kernels)} differ in length"
            )
        for rate, kernel in zip(rates, up_kernels, strict=True):
            if kernel < rate or (kernel - rate) % 2:
                raise ValueError(
                    f"upsample kernel {kernel} with rate {rate}: kernel - rate must be even and >= 0 "
                    "so that each stage multiplies the length exactly"
                )
        if self.upsample_initial_channel % 2 ** len(rates):
            raise ValueError(
                f"upsample_initial_channel {self.upsample_initial_channel} must be divisible by "
                f"2**{len(rates)} (it halves at every upsampling stage)"
            )
        if self.if_f0:
            strides = [math.prod(rates[i + 1 :]) for i in range(len(rates) - 1)]
            if any(stride % 2 for stride in strides):
                raise ValueError(
                    f"upsample_rates {list(rates)}: the NSF source convs need even strides, got {strides}"
                )
        object.__setattr__(self, "resblock_kernel_sizes", kernels)
        object.__setattr__(self, "resblock_dilation_sizes", dilations)
        object.__setattr__(self, "upsample_rates", rates)
        object.__setattr__(self, "upsample_kernel_sizes", up_kernels)

    @property
    def content_dim(self) -> int:
        """Width of the HuBERT features the voice expects: 256 (v1) or 768 (v2)."""
        return CONTENT_DIMS[self.version]

    @property
    def hop_length(self) -> int:
        """Output samples per 10 ms content frame (product of the upsample rates)."""
        return math.prod(self.upsample_rates)

    @classmethod
    def from_checkpoint_list(cls, values: Sequence[Any], *, version: str, if_f0: bool) -> SynthesizerConfig:
        """Build from a checkpoint's 18-entry ``config`` list (sr may be an int or "32k"/"40k"/"48k")."""
        if (
            isinstance(values, str | bytes)
            or not isinstance(values, Sequence)
            or len(values) != CONFIG_LIST_LENGTH
        ):
            raise ValueError(f"config must be a list of {CONFIG_LIST_LENGTH} entries, got {values!r}")
        values = list(values)
        sample_rate = values[17]
        if isinstance(sample_rate, str):
            if sample_rate not in SAMPLE_RATE_NAMES:
                raise ValueError(
                    f"config sample rate must be an int or one of {sorted(SAMPLE_RATE_NAMES)}, got {sample_rate!r}"
                )
            sample_rate = SAMPLE_RATE_NAMES[sample_rate]
        return cls(*values[:17], sample_rate=sample_rate, version=version, if_f0=if_f0)  # type: ignore[misc]  # the 17 entries are exactly the fields before sample_rate

    def to_checkpoint_list(self) -> list[Any]:
        """The official 18-entry ``config`` list (plain lists, so ``weights_only`` loading works)."""
        return [
            self.spec_channels, self.segment_size, self.inter_channels, self.hidden_channels,
            self.filter_channels, self.n_heads, self.n_layers, self.kernel_size, self.p_dropout,
            self.resblock, list(self.resblock_kernel_sizes), [list(d) for d in self.resblock_dilation_sizes],
            list(self.upsample_rates), self.upsample_initial_channel, list(self.upsample_kernel_sizes),
            self.spk_embed_dim, self.gin_channels, self.sample_rate,
        ]  # fmt: skip

    def replace(self, **changes: Any) -> SynthesizerConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


def official_config(
    version: str, sample_rate: int, *, if_f0: bool = True, spk_embed_dim: int = 109
) -> SynthesizerConfig:
    """The full-size configuration the official trainer writes for ``version`` at ``sample_rate``."""
    try:
        rates, kernels = _OFFICIAL_UPSAMPLING[(version, sample_rate)]
    except KeyError:
        raise ValueError(
            f"no official config for version {version!r} at {sample_rate} Hz; "
            f"known: {sorted(_OFFICIAL_UPSAMPLING)}"
        ) from None
    return SynthesizerConfig(
        spec_channels=513 if sample_rate == 32000 else 1025,
        segment_size=32,
        inter_channels=192,
        hidden_channels=192,
        filter_channels=768,
        n_heads=2,
        n_layers=6,
        kernel_size=3,
        p_dropout=0,
        resblock="1",
        resblock_kernel_sizes=(3, 7, 11),
        resblock_dilation_sizes=((1, 3, 5), (1, 3, 5), (1, 3, 5)),
        upsample_rates=rates,
        upsample_initial_channel=512,
        upsample_kernel_sizes=kernels,
        spk_embed_dim=spk_embed_dim,
        gin_channels=256,
        sample_rate=sample_rate,
        version=version,
        if_f0=if_f0,
    )
