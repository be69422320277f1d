"""A decode loop that rows join while it runs, not only leave: continuous batching for ``SparkLM``.

``SparkLM.decode_steps`` decodes a batch fixed at its start; a stream that arrives one step later
must wait for the whole batch or decode alone. On a CPU a decode step of a few rows costs little
more than one row (the weights are read once per step either way), so concurrent streams are
cheapest when they share steps. ``ContinuousBatch`` keeps the running batch between steps:

* ``join`` prefills a new prompt alone (batch 1, as ``SparkLM.stream`` does), draws its first id and
  merges its KV cache into the running one, left-padding the shorter side along the sequence axis
  (attention mask 0 on the pads, zeros in their K/V). Position ids stay per row (each row's own
  count of real tokens), so every row computes its solo math; only batched matmuls may change the
  logits' last float bits.
* ``step`` runs one forward for every row and draws each row's next id with its own
  ``RowSampler`` (generator, grammar); rows that finish (stop id, max_new_tokens) leave, as does
  a row its consumer ``leave``s. Columns that no remaining row attends are cut from the left, so a
  long row that left costs the others nothing.

Rows that score the whole vocabulary and rows restricted to the grammar (``restrict_vocab``)
cannot share a step's logits projection: a batch holds one kind, and ``join`` refuses the other
(keep one batch per kind). The merge needs transformers' ``DynamicLayer`` caches
(``keys``/``values`` of shape (B, kv_heads, S, head_dim)); a model whose cache has other layer
kinds (sliding windows) is refused at the first join.
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from sparktts.decode_rows import RowBatch, RowSampler, RowToken
from sparktts.generation import GenerationParams
from sparktts.llm import SparkLM, decode_mask


def _left_pad(tensor: torch.Tensor, width: int, dim: int) -> torch.Tensor:
    """Zeros before ``tensor`` along ``dim`` up to ``width`` (zeros in K/V and 0 in the mask)."""
    missing = width - tensor.shape[dim]
    if missing == 0:
        return tensor
    pad = [0, 0] * (tensor.dim() - 1 - dim % tensor.dim()) + [missing, 0]
    return F.pad(tensor, pad)


def _states(layer: DynamicLayer) -> tuple[torch.Tensor, torch.Tensor]:
    """(keys, values), each (B, kv_heads, S, head_dim), of a layer that has been filled."""
    if layer.keys is None or layer.values is None:
        raise ValueError("a KV cache layer of the running batch is empty")
    return layer.keys, layer.values


class ContinuousBatch(RowBatch[SparkLM]):
    """The running batch: KV cache, attention mask, position ids and one sampler per row.

    Not thread-safe: one thread (``sparktts.serving.stream_batcher.StreamBatcher``'s decode thread) owns it.
    """

    _keys: list[int]
    _samplers: list[RowSampler]
    _cache: DynamicCache | None
    _mask: torch.Tensor  # (B, S) over the cached positions
    _positions: torch.Tensor  # (B, 1) position of each row's last cached id
    _pending: torch.Tensor  # (B, 1) each row's last drawn id, fed next step

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def keys(self) -> list[int]:
        return list(self._keys)

    @property
    def width(self) -> int:
        """Cached positions per row, padding included (what a step attends over, minus one)."""
        return int(self._mask.shape[1])

    def join(self, key: int, input_ids: torch.Tensor, params: GenerationParams) -> RowToken:
        """Prefill input_ids (1, L) int64 alone and draw the row's first id; unless that id ends
        the row, it joins the batch and its next ids come from ``step``."""
        self._check_new_row(key, params)
        device = self.lm.device
        input_ids = input_ids.to(device)
        sampler = RowSampler(self.lm, params)
        cache = DynamicCache(config=self.lm.model.config)
        mask = torch.ones_like(input_ids)
        positions = torch.arange(input_ids.shape[1], device=device)[None, :]
        with torch.inference_mode():
            logits = self.lm.forward_logits(input_ids, mask, positions, cache, self.restrict_vocab)
            self._observe([key], logits)
            token = sampler.draw(logits)
            if not sampler.finished:
                self._merge(key, sampler, cache, mask, positions[:, -1:], token)
        return RowToken(key, token, sampler.finished)

    def step(self) -> list[RowToken]:
        """One forward for every row: each row's next id, in batch order; finished rows leave."""
        if not self._keys:
            return []
        assert self._cache is not None  # set by the first join, kept while any row decodes
        mask = torch.cat([self._mask, self._mask.new_ones((len(self._keys), 1))], dim=1)
        positions = self._positions + 1
        with torch.inference_mode():
            logits = self.lm.forward_logits(
                self._pending, decode_mask(mask) if len(self._keys) > 1 else mask, positions, self._cache,
                self.restrict_vocab,
            )
            self._observe(list(self._keys), logits)
            drawn = [RowToken(key, sampler.draw(logits[row : row + 1]), sampler.finished)
                     for row, (key, sampler) in enumerate(zip(self._keys, self._samplers, strict=True))]
        self._mask, self._positions = mask, positions
        self._pending = torch.tensor([[t.token] for t in drawn], dtype=torch.long, device=self._pending.device)
        self._keep([row for row, t in enumerate(drawn) if not t.last])
        return drawn

    def leave(self, key: int) -> bool:
        """Drop a row (its consumer is gone); False if it is not in the batch (already finished)."""
        if key not in self._keys:
            return False
        self._keep([row for row, k in enumerate(self._keys) if k != key])
        return True

    def clear(self) -> None:
        """Drop every row (after a failed step, whose state cannot be trusted)."""
        self._keys = []
        self._samplers = []
        self._cache = None
        self._mask = torch.zeros((0, 0), dtype=torch.long)
        self._positions = torch.zeros((0, 1), dtype=torch.long)
        self._pending = torch.zeros((0, 1), dtype=torch.long)

    # ------------------------------------------------------------------ batch state
    def _merge(
        self, key: int, sampler: RowSampler, cache: DynamicCache, mask: torch.Tensor, position: torch.Tensor,
        token: int,
    ) -> None:
        """Append a prefilled row. Every new tensor is built before any is assigned, so a failure
        (out of memory) leaves the running batch as it was."""
        if self._cache is None:
            self._check_layers(cache)
            merged_cache, merged_mask = cache, mask
        else:
            width = max(self.width, mask.shape[1])
            merged_layers = [
                tuple(torch.cat([_left_pad(old_kv, width, -2), _left_pad(new_kv, width, -2)])
                      for old_kv, new_kv in zip(_states(old), _states(new), strict=True))
                for old, new in zip(self._layers(self._cache), self._layers(cache), strict=True)
            ]
            merged_mask = torch.cat([_left_pad(self._mask, width, 1), _left_pad(mask, width, 1)])
            merged_cache = self._cache
            for layer, (keys, values) in zip(self._layers(merged_cache), merged_layers, strict=True):
                layer.keys, layer.values = keys, values
        pending = torch.tensor([[token]], dtype=torch.long, device=mask.device)
        self._cache, self._mask = merged_cache, merged_mask
        self._positions = torch.cat([self._positions.to(mask.device), position])
        self._pending = torch.cat([self._pending.to(mask.device), pending])
        self._keys.append(key)
        self._samplers.append(sampler)

    def _keep(self, rows: list[int]) -> None:
        """Keep these rows (batch order) and cut the leading columns none of them attends."""
        if len(rows) == len(self._keys):
            return
        if not rows:
            self.clear()
            return
        self._keys = [self._keys[row] for row in rows]
        self._samplers = [self._samplers[row] for row in rows]
        assert self._cache is not None
        kept = torch.tensor(rows, dtype=torch.long, device=self._mask.device)
        mask = self._mask[kept]
        first = int(mask.any(dim=0).long().argmax())  # the first column some row attends
        for layer in self._layers(self._cache):
            keys, values = _states(layer)
            layer.keys, layer.values = keys[kept, :, first:], values[kept, :, first:]
        self._mask = mask[:, first:]
        self._positions, self._pending = self._positions[kept], self._pending[kept]

    @staticmethod
    def _layers(cache: DynamicCache) -> list[DynamicLayer]:
        return cache.layers

    @staticmethod
    def _check_layers(cache: DynamicCache) -> None:
        kinds = sorted({type(layer).__name__ for layer in cache.layers if type(layer) is not DynamicLayer})
        if kinds or not all(cast("DynamicLayer", layer).is_initialized for layer in cache.layers):
            raise ValueError(f"continuous batching merges full-attention DynamicLayer caches only; this model's "
                             f"cache has {kinds or 'uninitialized layers'}")
