"""RVC conversion in a pool of worker processes, plus its daemon and client.

The gateway (``rvc.processing``) imports from here, never from ``rvc.infer``
directly: this package re-exports the conversion types it carries.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rvc.server.client import RVCClient
from rvc.server.config import PoolConfig
from rvc.server.jobs import JobHandle
from rvc.server.pool import RVCServer
from rvc.server.status import PoolStatus, WorkerStatus

if TYPE_CHECKING:
    from rvc.infer.converter import ConversionParams, ConversionResult

__all__ = [
    "ConversionParams",
    "ConversionResult",
    "JobHandle",
    "PoolConfig",
    "PoolStatus",
    "RVCClient",
    "RVCServer",
    "WorkerStatus",
]


def __getattr__(name: str) -> Any:
    # The converter types load torch (seconds), so they are imported on first use: the control
    # tool and the daemon's parent stay light, and a worker sets its thread counts before torch loads.
    if name in ("ConversionParams", "ConversionResult"):
        from rvc.infer import converter

        return getattr(converter, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
