"""RVC conversion in a pool of worker processes, plus its daemon and client.

The gateway (``rvc.processing``) imports from here, never from ``rvc.infer``
directly: this package re-exports the per-job value types it carries, which
live in the torch-free ``rvc.infer.params``. Importing this package loads no
torch (worker.py says why a worker depends on that).
"""

from __future__ import annotations

from rvc.infer.params import F0_METHODS, PRECISIONS, ConversionParams, ConversionResult, VoiceInfo
from rvc.infer.stream_config import StreamConfig
from rvc.server.client import RVCClient
from rvc.server.config import PoolConfig
from rvc.server.jobs import JobHandle
from rvc.server.pool import RVCServer
from rvc.server.status import PoolStatus, WorkerStatus
from rvc.server.streams import StreamHandle

__all__ = [
    "F0_METHODS",
    "PRECISIONS",
    "ConversionParams",
    "ConversionResult",
    "JobHandle",
    "PoolConfig",
    "PoolStatus",
    "RVCClient",
    "RVCServer",
    "StreamConfig",
    "StreamHandle",
    "VoiceInfo",
    "WorkerStatus",
]
