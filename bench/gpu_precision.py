"""gpu_check.py step 3's precision checks: what the LLM dtype rule and the TF32 switches did in
Triton's stubs on this card, and a float16 LLM scoring its head in float32 on this device.

On the CPU the tests pin both (``tests/sparktts_lm/test_precision.py``); only a GPU tells whether a
stub on a real card picked the dtype ``sparktts.precision.llm_dtype`` promises for it (bfloat16 from
compute capability 8.0, float16 below), turned TF32 off for the float32 codec, and whether CUDA's
float16 kernels overflow where the CPU's do.
"""

from __future__ import annotations

import re
from pathlib import Path

from sparktts.precision import AUTO, Capability, allow_tf32, llm_dtype

__all__ = ["float16_head_on_device", "stub_precision"]

# sparktts.serving.placement.llm_placement's and sparktts.serving.codec.load_codec's load lines
_LLM_LINE = re.compile(r"LLM on (\S+)(?: \([^)]*\))? in (\w+) \(TF32 (on|off)\)")
_CODEC_LINE = re.compile(r"BiCodec (?:encoder|decoder|encoder \+ decoder) from \S+ on (\S+) \((torch\.\w+)\)")


def stub_precision(log_text: str, device: str, capability: Capability | None) -> str:
    """Check a server log of a repository prepared with ``dtype="auto"``: every LLM instance in the
    rule's dtype for this card with TF32 to match, every codec instance float32."""
    expected = llm_dtype(AUTO, device, capability)
    llms, codecs = _LLM_LINE.findall(log_text), _CODEC_LINE.findall(log_text)
    if not llms or not codecs:
        raise RuntimeError(f"the server log has {len(llms)} LLM and {len(codecs)} BiCodec load lines; expected both")
    tf32 = "on" if allow_tf32(expected) else "off"
    wrong = [line for line in llms if not line[0].startswith(device) or line[1] != expected or line[2] != tf32]
    wrong += [line for line in codecs if not line[0].startswith(device) or line[1] != "torch.float32"]
    if wrong:
        raise RuntimeError(f"stubs placed otherwise than the rule says ({device}, LLM {expected}, TF32 {tf32}, "
                           f"codec float32): {wrong}")
    return f"{len(llms)} LLM instances in {expected} (TF32 {tf32}), {len(codecs)} BiCodec instances float32"


def float16_head_on_device(model_dir: Path, device: str) -> str:
    """The demo LLM in float16 on ``device`` with its head weights scaled until the prompt's best
    score is twice float16's largest (65504), the weights themselves staying finite: the float16 head
    then overflows to inf, ``SparkLM``'s float32 head does not, and sampling runs."""
    import torch

    from sparktts.llm import GenerationParams, SparkLM

    largest = float(torch.finfo(torch.float16).max)
    lm = SparkLM.from_pretrained(model_dir / "LLM", device=device, dtype=torch.float16)
    head = lm.model.get_output_embeddings()
    prompt = "<|task_tts|><|start_content|>checking the head<|end_content|><|start_global_token|>"

    def last_hidden() -> torch.Tensor:
        return lm.model.model(lm.encode(prompt).to(lm.device)).last_hidden_state[:, -1, :]

    with torch.inference_mode():  # not through lm._logits: it would keep a float32 copy of the unscaled head
        peak = float((last_hidden().float() @ head.weight.float().T).abs().max())
    with torch.no_grad():  # scores are linear in the head's weights (tied: the final norm keeps the hidden state's size)
        head.weight.mul_(min(2 * largest / peak, 0.5 * largest / float(head.weight.abs().max())))
    with torch.inference_mode():
        hidden = last_hidden()
        overflowed = int(torch.isinf(head(hidden)).sum())
        scores = lm._logits(hidden, False)
    if not torch.isfinite(scores).all():
        raise RuntimeError(f"float16 LLM on {device}: the float32 head still gives non-finite scores")
    ids = lm.generate(prompt, GenerationParams(max_new_tokens=12, seed=3, do_sample=True))
    provoked = f"{overflowed} scores inf through a float16 head" if overflowed else "no float16 overflow provoked"
    return f"float16 LLM on {device}: {provoked}, none through ours; sampled {len(ids)} tokens"
