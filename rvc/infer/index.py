"""Feature retrieval: blend HuBERT features with their nearest neighbours from the voice's training set.

An RVC ``.index`` is a faiss ``IVF{n},Flat`` index (L2, nprobe 1 stored in the file) over the
voice's training features (768-d for v2, 256-d for v1). For every frame the 8 nearest training
vectors are averaged with weights ∝ 1/score², score being faiss's *squared* L2 distance, and the
result is mixed in with ``index_rate``: feats ← rate·retrieved + (1 − rate)·feats. This pulls
the timbre towards the target speaker.

Unlike the reference, which re-reads the file and re-runs ``reconstruct_n`` on every call, the
vectors are reconstructed once at load and kept (ntotal × dim float32; ~90 MB for 30k frames).
Edge cases the reference leaves open are defined here: an exact match (score 0) takes all the
weight (shared among exact matches), a neighbour id of −1 (fewer than 8 vectors in the probed
list) gets weight 0, and a frame with no neighbour at all keeps its own features.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import overload

import faiss
import numpy as np
import torch

from rvc.errors import AssetError, InvalidInput

__all__ = ["NEIGHBOURS", "FeatureIndex"]

logger = logging.getLogger(__name__)

NEIGHBOURS = 8
Trace = dict[str, list[np.ndarray]]


def neighbour_weights(scores: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """(T, k) squared distances and ids -> (T, k) float32 weights ∝ 1/score², rows summing to 1.

    Computed as (min_score/score)², which normalises to the same weights without overflowing for
    tiny scores and gives exact matches (score 0) all the weight. Rows without any valid id are 0.
    """
    valid = ids >= 0
    scores = np.where(valid, scores.astype(np.float64), np.inf)
    nearest = scores.min(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(nearest > 0, nearest / scores, (scores == 0).astype(np.float64))
    weights = np.where(valid, np.square(ratio), 0.0)
    totals = weights.sum(axis=1, keepdims=True)
    return np.divide(weights, totals, out=np.zeros_like(weights), where=totals > 0).astype(np.float32)


class FeatureIndex:
    """A voice's retrieval index with its vectors cached; ``search`` and ``blend`` are thread-safe."""

    def __init__(self, index: faiss.Index, vectors: np.ndarray, *, path: Path | None = None) -> None:
        self.index = index
        self.vectors = vectors
        self.path = path

    @classmethod
    def load(cls, path: str | Path) -> FeatureIndex:
        """Read a faiss index file and reconstruct all its vectors once (AssetError if unusable)."""
        path = Path(path)
        if not path.is_file():
            raise AssetError(f"index {path} does not exist")
        try:
            index = faiss.read_index(str(path))
        except RuntimeError as exc:
            raise AssetError(f"index {path} cannot be read by faiss: {exc}") from exc
        if index.ntotal == 0:
            raise AssetError(
                f"index {path} holds no vectors; it is probably the 'trained_*' file, use the 'added_*' one"
            )
        try:
            vectors = np.ascontiguousarray(index.reconstruct_n(0, index.ntotal), dtype=np.float32)
        except RuntimeError as exc:
            raise AssetError(f"index {path} cannot return its vectors (reconstruct_n): {exc}") from exc
        logger.info("loaded index %s: %d vectors of %d dims", path, index.ntotal, index.d)
        return cls(index, vectors, path=path)

    @property
    def dim(self) -> int:
        return int(self.index.d)

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    def _as_queries(self, feats: np.ndarray) -> np.ndarray:
        if feats.ndim != 2 or feats.shape[1] != self.dim:
            raise AssetError(
                f"index {self.path} holds {self.dim}-d vectors but the features are {feats.shape[-1]}-d "
                "(v1 voices need a 256-d index, v2 voices a 768-d one)"
            )
        return np.ascontiguousarray(feats, dtype=np.float32)

    def search(self, feats: np.ndarray, k: int = NEIGHBOURS) -> tuple[np.ndarray, np.ndarray]:
        """feats (T, dim) -> (squared L2 scores (T, k) float32, ids (T, k) int64; −1 = no neighbour)."""
        scores, ids = self.index.search(self._as_queries(feats), k)
        return scores, ids

    def retrieve(self, feats: np.ndarray, *, trace: Trace | None = None) -> np.ndarray:
        """feats (T, dim) -> (T, dim) float32 weighted mean of each frame's 8 nearest vectors."""
        queries = self._as_queries(feats)
        scores, ids = self.search(queries)
        if trace is not None:
            trace.setdefault("index_score", []).append(scores.copy())
            trace.setdefault("index_ix", []).append(ids.copy())
        weights = neighbour_weights(scores, ids)
        neighbours = self.vectors[np.where(ids >= 0, ids, 0)]  # (T, k, dim); weight 0 where id < 0
        retrieved = np.sum(neighbours * weights[:, :, None], axis=1, dtype=np.float32)
        orphans = ~(ids >= 0).any(axis=1)
        if orphans.any():
            retrieved[orphans] = queries[orphans]
        return retrieved

    @overload
    def blend(self, feats: torch.Tensor, index_rate: float, *, trace: Trace | None = None) -> torch.Tensor: ...
    @overload
    def blend(self, feats: np.ndarray, index_rate: float, *, trace: Trace | None = None) -> np.ndarray: ...

    def blend(
        self, feats: torch.Tensor | np.ndarray, index_rate: float, *, trace: Trace | None = None
    ) -> torch.Tensor | np.ndarray:
        """rate·retrieved + (1 − rate)·feats for (T, dim) or (1, T, dim) features.

        Returns the same type, shape, dtype and device as ``feats``; index_rate must be in [0, 1].
        """
        if not 0.0 <= index_rate <= 1.0:
            raise InvalidInput(f"index_rate must be in [0, 1], got {index_rate}", field="index_rate")
        if feats.ndim == 3 and feats.shape[0] != 1:
            raise ValueError(f"blend takes one utterance, (1, T, dim); got {tuple(feats.shape)}")
        if isinstance(feats, torch.Tensor):
            array = feats.detach().float().cpu().numpy()
            blended = self._blend_array(array, index_rate, trace)
            return torch.from_numpy(blended).to(device=feats.device, dtype=feats.dtype)
        return self._blend_array(feats.astype(np.float32, copy=False), index_rate, trace).astype(feats.dtype)

    def _blend_array(self, feats: np.ndarray, index_rate: float, trace: Trace | None) -> np.ndarray:
        retrieved = self.retrieve(feats.reshape(-1, feats.shape[-1]), trace=trace).reshape(feats.shape)
        return retrieved * np.float32(index_rate) + np.float32(1 - index_rate) * feats
