"""The Spark-TTS language model: a Qwen2 causal LM over text + BiCodec tokens.

``SparkLM`` loads ``<model_dir>/LLM`` through transformers (``AutoTokenizer``,
``Qwen2ForCausalLM``) and decodes with its own KV-cache loop instead of ``generate`` so that the
same loop serves ``generate``, ``stream`` and left-padded ``generate_batch``. Seeded sampling
reproduces the official ``torch.manual_seed(seed); model.generate(...)`` run id for id
(``sparktts.sampling`` explains how), greedy decoding is the official argmax.

Precision: float32 by default, which is what the official loader runs (it passes no dtype, and
transformers 4.46 then ignores ``torch_dtype: bfloat16`` in ``config.json``). transformers 5
would honour that field, so the dtype is always passed explicitly here. A float16 model (GPUs below
compute capability 8.0) scores its head in float32, so that no score overflows to inf.

``restrict_vocab`` (off by default) scores only the rows the Spark grammar can emit after the
prompt (bicodec global + semantic tokens, Spark delimiters, stop tokens: ~12.3k of 166k rows),
which removes most of the 166000x896 head GEMV. Scores are scattered back into a full-vocabulary
row before sampling, so a step is bit-identical to the exact path whenever the full model's top-k
set (greedy: its argmax) lies inside that set; it differs only on steps where a text token would
have been a candidate. ``SparkLM.restriction_report`` measures how often that happens.

``fast_matmul`` (on by default when the model runs on a CPU) computes decode-time projections as
``W @ X^T`` GEMMs (one row padded to two) instead of ``X @ W^T`` GEMVs: the same float32 math with
a different summation order (logits move by ~1e-6: within float tolerance, not bit-identical to
the official run; the spark_tts_tiny golden ids stay exact under greedy and seeded sampling),
which MKL runs about twice as fast on CPUs where its GEMV path is slow (AMD EPYC here): 1.7x end
to end at batch 1 in bench_tts. Prefill (> 8 rows) is unchanged. ``fast_matmul=False`` is the
official summation order, bit for bit; GPUs keep it (their GEMV is not the bottleneck).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoTokenizer, DynamicCache, PreTrainedTokenizerBase, Qwen2ForCausalLM

from sparktts.decode_rows import RowSampler
from sparktts.errors import CheckpointError
from sparktts.generation import GenerationParams
from sparktts.llm_folder import special_ids
from sparktts.llm_vocab import SparkVocabulary
from sparktts.precision import LLM_DTYPES, logits_dtype

logger = logging.getLogger(__name__)




def gemm_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear`` computed as ``(W @ X^T)^T`` for <= 8 rows (see ``fast_matmul``); x: (..., in)."""
    flat = x.reshape(-1, x.shape[-1])
    rows = flat.shape[0]
    if rows > 8:
        return F.linear(x, weight, bias)
    # MKL's fast path wants X^T as the transposed view of a row-major X; one row would be a GEMV
    # again and a stride-0 (expanded) row a slow generic kernel, so a single row is duplicated.
    flat = torch.cat([flat, flat]) if rows == 1 else flat.contiguous()
    out = torch.mm(weight, flat.t()).t()[:rows]
    if bias is not None:
        out = out + bias
    return out.reshape(*x.shape[:-1], out.shape[-1])


def projection_dtype(model_dtype: torch.dtype) -> torch.dtype:
    """The dtype the LLM head scores in for a model of ``model_dtype`` (``sparktts.precision.logits_dtype``:
    float32 for float16, the model's own otherwise)."""
    name = str(model_dtype).removeprefix("torch.")
    return getattr(torch, logits_dtype(name)) if name in LLM_DTYPES else model_dtype


def decode_mask(attention_mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """attention_mask: (B, L) of a batched one-token step -> the ready-made (B, 1, 1, L) bool mask.

    It keeps transformers on its per-KV-head decode attention; left to itself it drops an all-ones
    mask and torch's GQA kernel then copies K/V for every query head on CPU (~25 ms per step at
    batch 4).
    """
    return {"full_attention": attention_mask.bool()[:, None, None, :]}


class SmallBatchLinear(nn.Linear):
    """``nn.Linear`` whose forward is :func:`gemm_linear`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return gemm_linear(x, self.weight, self.bias)


class SparkLM(SparkVocabulary):
    """Qwen2 LM + tokenizer. ``generate``/``stream`` return generated ids only (stop id included)."""

    def __init__(self, model: Qwen2ForCausalLM, tokenizer: PreTrainedTokenizerBase, *, fast_matmul: bool | None = None) -> None:
        self.model = model.eval()
        if fast_matmul is None:  # see the module docstring
            fast_matmul = model.get_output_embeddings().weight.device.type == "cpu"
        self.fast_matmul = fast_matmul
        if fast_matmul:
            for module in model.modules():  # same parameters, other forward; no copies
                if type(module) is nn.Linear:
                    module.__class__ = SmallBatchLinear
        stop_ids, pad_id = special_ids(model.generation_config, model.config, tokenizer)
        super().__init__(tokenizer, stop_ids=stop_ids, pad_id=pad_id,
                         vocab_rows=int(model.get_output_embeddings().weight.shape[0]))
        # restrict -> ((head dtype, device, projection dtype), the head rows in the projection dtype)
        self._head_weights: dict[bool, tuple[tuple[torch.dtype, torch.device, torch.dtype], torch.Tensor]] = {}

    @classmethod
    def from_pretrained(
        cls,
        llm_dir: str | Path,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        fast_matmul: bool | None = None,
    ) -> SparkLM:
        """llm_dir: the checkpoint's ``LLM/`` folder (config.json, model.safetensors, tokenizer files).

        dtype: float32 is the official precision; bfloat16 is an explicit opt-in, never a default.
        fast_matmul: None = on for a CPU device (see the module docstring).
        """
        llm_dir = Path(llm_dir)
        if not (llm_dir / "config.json").is_file():
            raise CheckpointError(f"Spark LLM folder {llm_dir} has no config.json")
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(llm_dir))
            # output_loading_info=True makes it return (model, info); its annotation does not say so
            model, info = cast(
                "tuple[Qwen2ForCausalLM, dict[str, list[str]]]",
                Qwen2ForCausalLM.from_pretrained(str(llm_dir), dtype=dtype, output_loading_info=True),
            )
        except (OSError, ValueError) as exc:  # transformers' errors for unreadable files / configs
            raise CheckpointError(f"cannot load the Spark LLM from {llm_dir}: {exc}") from exc
        tied = {"lm_head.weight"} if model.config.tie_word_embeddings else set()
        problems = {kind: sorted(str(k) for k in info.get(kind, ()) if str(k) not in tied)
                    for kind in ("missing_keys", "unexpected_keys", "mismatched_keys")}
        if any(problems.values()):
            raise CheckpointError(f"{llm_dir / 'model.safetensors'} does not fit config.json: "
                                  + "; ".join(f"{kind} {keys[:20]}" for kind, keys in problems.items() if keys))
        model = model.to(device)
        lm = cls(model, tokenizer, fast_matmul=fast_matmul)
        logger.info("loaded Spark LLM from %s (dtype %s, device %s, fast_matmul %s)", llm_dir, dtype, device,
                    lm.fast_matmul)
        return lm

    @property
    def device(self) -> torch.device:
        return self.model.get_output_embeddings().weight.device

    # ------------------------------------------------------------------ decoding
    def _logits(self, hidden: torch.Tensor, restrict: bool) -> torch.Tensor:
        """hidden: (B, H) last positions -> (B, V) float32 logits (-inf outside the grammar if restricted).

        A float16 model projects in float32 (``sparktts.precision.logits_dtype``): its head would
        round scores above 65504 to inf, and ``multinomial`` fails on the NaNs softmax makes of them.
        That costs a float32 copy of the head (166000 x 896: 0.6 GB; 44 MB restricted), made once.
        """
        head = self.model.get_output_embeddings()
        dtype = projection_dtype(head.weight.dtype)
        if not restrict and dtype == head.weight.dtype:
            return head(hidden).float()  # the official projection, unchanged
        project = gemm_linear if self.fast_matmul else F.linear
        scores = project(hidden.to(dtype), self._head_weight(restrict, dtype)).float()
        if not restrict:
            return scores
        logits = torch.full((hidden.shape[0], self.vocab_rows), float("-inf"), device=hidden.device)
        logits[:, self.grammar_ids().to(hidden.device)] = scores
        return logits

    def _head_weight(self, restrict: bool, dtype: torch.dtype) -> torch.Tensor:
        """The head's rows (the grammar's when ``restrict``) in ``dtype``, kept until the model moves."""
        weight = self.model.get_output_embeddings().weight
        key = (weight.dtype, weight.device, dtype)
        cached = self._head_weights.get(restrict)
        if cached is None or cached[0] != key:
            rows = weight.detach()
            if restrict:
                rows = rows.index_select(0, self.grammar_ids().to(weight.device))
            cached = self._head_weights[restrict] = (key, rows.to(dtype).contiguous())
        return cached[1]

    def forward_logits(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | dict[str, torch.Tensor],
        position_ids: torch.Tensor,
        cache: DynamicCache,
        restrict: bool,
    ) -> torch.Tensor:
        """One forward that extends ``cache``: input_ids (B, T) -> (B, V) float32 logits of position T.

        attention_mask: (B, cached + T) int64, or :func:`decode_mask`'s form for a batched T = 1 step.
        Call under ``torch.inference_mode()``.
        """
        out = self.model.model(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, cache=cache, use_cache=True,
        )
        return self._logits(out.last_hidden_state[:, -1, :], restrict)

    def decode_steps(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        params: Sequence[GenerationParams],
        on_logits: Callable[[torch.Tensor], None] | None = None,
    ) -> Iterator[list[int | None]]:
        """The decode loop: yield, per step, the new id of every row (None once a row has stopped).

        input_ids / attention_mask: (B, L) int64, left-padded; one params per row.
        on_logits: called with each step's (B_running, V) float32 logits before sampling
        (diagnostics), one row per row still decoding, in row order.

        A row that stops leaves the batch (its KV cache rows are dropped), so a batch costs what
        its running rows cost: a short request batched with a long one no longer makes every later
        step of the long one pay for two rows.
        """
        device = self.device
        input_ids = input_ids.to(device)
        attention_mask = attention_mask.to(device)
        batch = input_ids.shape[0]
        restrict = any(p.restrict_vocab for p in params)
        if restrict and not all(p.restrict_vocab for p in params):
            raise ValueError("restrict_vocab must be the same for every request of a batch")
        limit = max(p.max_new_tokens for p in params)
        samplers = [RowSampler(self, p) for p in params]
        running = list(range(batch))  # the rows still in the batch, in row order
        cache = DynamicCache(config=self.model.config)
        position_ids = (attention_mask.long().cumsum(-1) - 1).masked_fill(attention_mask == 0, 1)
        step_ids = input_ids
        with torch.inference_mode():
            for step in range(limit):
                mask: torch.Tensor | dict[str, torch.Tensor] = attention_mask
                if step and batch > 1:
                    mask = decode_mask(attention_mask)
                logits = self.forward_logits(step_ids, mask, position_ids, cache, restrict)
                if on_logits is not None:
                    on_logits(logits)
                new: list[int | None] = [None] * batch
                keep: list[int] = []  # positions in ``running`` of the rows that go on
                for position, row in enumerate(running):
                    new[row] = samplers[row].draw(logits[position : position + 1])
                    if not samplers[row].finished:
                        keep.append(position)
                yield new
                if not keep:
                    return
                if len(keep) < len(running):
                    kept = torch.tensor(keep, device=device)
                    cache.batch_select_indices(kept)
                    attention_mask, position_ids = attention_mask[kept], position_ids[kept]
                    running = [running[position] for position in keep]
                step_ids = torch.tensor([[new[row]] for row in running], device=device)
                attention_mask = torch.cat([attention_mask, attention_mask.new_ones((len(running), 1))], dim=1)
                position_ids = position_ids[:, -1:] + 1

    def stream(self, prompt: str, params: GenerationParams) -> Iterator[int]:
        """Yield generated ids one by one (the stop id last, if reached); same ids as ``generate``."""
        input_ids = self.encode(prompt)
        for new in self.decode_steps(input_ids, torch.ones_like(input_ids), [params]):
            token = new[0]
            if token is None:  # the only row stopped (the loop ends with it anyway)
                return
            yield token

    def generate(self, prompt: str, params: GenerationParams) -> list[int]:
        """Generated ids only, as the official ``output_ids[len(input_ids):]`` (stop id included)."""
        return list(self.stream(prompt, params))

    def generate_batch(
        self, prompts_: Sequence[str], params: GenerationParams | Sequence[GenerationParams]
    ) -> list[list[int]]:
        """Decode several prompts together (left padding). One params for all, or one per prompt.

        A seeded row draws from its own generator, so it samples as it would alone; its logits come
        from a batched matmul, which may differ from the batch-1 ones in the last float bits.
        """
        if not prompts_:
            return []
        if isinstance(params, GenerationParams):
            params = [params] * len(prompts_)
        if len(params) != len(prompts_):
            raise ValueError(f"got {len(params)} GenerationParams for {len(prompts_)} prompts")
        outputs: list[list[int]] = [[] for _ in prompts_]
        for new in self.decode_steps(*self.encode_batch(prompts_), params):
            for row, token in enumerate(new):
                if token is not None:
                    outputs[row].append(token)
        return outputs

    def restriction_report(self, prompt: str, params: GenerationParams) -> dict[str, float]:
        """Decode exactly and measure, step by step, what ``restrict_vocab`` would change.

        A step is ``unsafe`` when a token outside the grammar rows would be a candidate of the full
        model: inside its top-k set when sampling (or, with top_k=0, has any probability), its
        argmax when greedy. Restricted decoding is bit-identical on every other step.
        ``outside_mass`` is the full softmax mass (at the temperature) outside the grammar rows.
        """
        grammar = torch.zeros(self.vocab_rows, dtype=torch.bool)
        grammar[self.grammar_ids()] = True
        unsafe: list[bool] = []
        mass: list[float] = []

        def check(logits: torch.Tensor) -> None:
            row = logits[0].float().cpu()
            scores = row / params.temperature if params.do_sample else row
            mass.append(float(torch.softmax(scores, dim=-1)[~grammar].sum()))
            if not params.do_sample:
                unsafe.append(not bool(grammar[int(torch.argmax(row))]))
            elif params.top_k:
                kth = torch.topk(scores, min(params.top_k, scores.numel()))[0][-1]
                unsafe.append(bool((scores[~grammar] >= kth).any()))
            else:
                unsafe.append(mass[-1] > 0.0)

        exact = replace(params, restrict_vocab=False)
        input_ids = self.encode(prompt)
        for _ in self.decode_steps(input_ids, torch.ones_like(input_ids), [exact], on_logits=check):
            pass
        steps = len(unsafe)
        return {
            "steps": float(steps),
            "unsafe_steps": float(sum(unsafe)),
            "max_outside_mass": max(mass, default=0.0),
            "mean_outside_mass": sum(mass) / steps if steps else 0.0,
        }
