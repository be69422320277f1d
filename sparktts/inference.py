"""SparkTTS: text (+ reference speech or voice attributes) -> 16 kHz speech, offline or streamed.

``inference`` follows the official ``cli/SparkTTS.py::SparkTTS.inference`` step for step:
tokenize the reference (clone) or read the attributes (control), build the prompt, sample the
LLM, decode the generated ids with ``skip_special_tokens=True``, regex out the semantic (and in
control mode global) ids, and vocode them with BiCodec. Differences, all on paths where the
official code crashes or cannot be reproduced: bad input raises ``ValueError`` naming the
problem, an LLM output that cannot be vocoded raises ``SynthesisError``, and ``seed`` seeds a
private generator (equal to the official ``torch.manual_seed(seed)`` before ``generate``).

``stream`` vocodes the semantic stream while it is generated, with the official Triton runtime's
chunk schedule (see ``sparktts.streaming``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from sparktts import prompts
from sparktts.audio_tokenizer import BiCodecTokenizer
from sparktts.llm import GenerationParams, SparkLM
from sparktts.streaming import ChunkSchedule, Crossfader

__all__ = ["MIN_REFERENCE_SECONDS", "SILENCE_PEAK", "SparkTTS", "SynthesisError", "SynthesisPrompt"]

logger = logging.getLogger(__name__)

MIN_REFERENCE_SECONDS = 0.5  # 25 semantic tokens: less gives the LM next to no speaker context
SILENCE_PEAK = 1e-4  # a reference whose peak is below this is treated as silence
DEFAULT_GENERATION = GenerationParams()  # the official SparkTTS.inference sampling
OFFICIAL_SCHEDULE = ChunkSchedule()  # the official Triton runtime's 50 -> 400 -> 1500 tokens


class SynthesisError(RuntimeError):
    """The LLM's output cannot be vocoded (no semantic ids, or not 32 global ids in control mode)."""


@dataclass(frozen=True)
class SynthesisPrompt:
    """A built prompt; ``global_tokens`` is the reference's (1, 32) int64 in clone mode, else None."""

    text: str
    global_tokens: torch.Tensor | None

    @property
    def control(self) -> bool:
        return self.global_tokens is None


class SparkTTS:
    """The whole Spark-TTS model: ``SparkLM`` + ``BiCodecTokenizer`` from one Spark-TTS-0.5B folder."""

    sample_rate = 16000

    def __init__(self, lm: SparkLM, audio_tokenizer: BiCodecTokenizer) -> None:
        if audio_tokenizer.sample_rate != self.sample_rate:
            raise ValueError(f"BiCodec runs at {audio_tokenizer.sample_rate} Hz, SparkTTS expects {self.sample_rate}")
        self.lm = lm
        self.audio_tokenizer = audio_tokenizer

    @classmethod
    def from_pretrained(
        cls,
        model_dir: str | Path,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        codec_dtype: torch.dtype | None = None,
        fast_matmul: bool | None = None,
    ) -> SparkTTS:
        """model_dir: the Spark-TTS-0.5B root. ``dtype`` is the LLM's (and, unless ``codec_dtype``
        says otherwise, BiCodec's); float32 is what the official code runs. ``fast_matmul``: see
        ``sparktts.llm`` (same float32 math, different summation order, ~2x faster decode on MKL/AMD;
        None = on for a CPU device, False = the official summation order bit for bit)."""
        model_dir = Path(model_dir)
        lm = SparkLM.from_pretrained(model_dir / "LLM", device=device, dtype=dtype, fast_matmul=fast_matmul)
        codec = BiCodecTokenizer.from_pretrained(model_dir, device=device, dtype=codec_dtype or dtype)
        return cls(lm, codec)

    # ------------------------------------------------------------------ prompts
    def _reference(self, prompt_speech: np.ndarray | str | Path, sample_rate: int) -> np.ndarray:
        if isinstance(prompt_speech, str | Path):
            prompt_speech, sample_rate = sf.read(str(prompt_speech), dtype="float64", always_2d=False)
        wav = np.asarray(prompt_speech)
        if wav.ndim == 2:  # (T, channels) as soundfile returns it: channel 0, as upstream
            wav = wav[:, 0]
        if wav.ndim != 1 or wav.size == 0:
            raise ValueError(f"reference audio must be a non-empty (T,) or (T, channels) array, got shape {wav.shape}")
        if not np.issubdtype(wav.dtype, np.floating):
            raise ValueError(f"reference audio must hold floats in [-1, 1], got dtype {wav.dtype}")
        if not np.all(np.isfinite(wav)):
            raise ValueError("reference audio contains NaN or infinite samples")
        if not isinstance(sample_rate, int | np.integer) or sample_rate <= 0:
            raise ValueError(f"prompt_sample_rate must be a positive int, got {sample_rate!r}")
        seconds = wav.shape[0] / sample_rate
        if seconds < MIN_REFERENCE_SECONDS:
            raise ValueError(f"reference audio is {seconds:.3f} s long; at least {MIN_REFERENCE_SECONDS} s is needed")
        if float(np.max(np.abs(wav))) < SILENCE_PEAK:
            raise ValueError("reference audio is silent (peak below 1e-4): it carries no voice to clone")
        return self.audio_tokenizer.prepare_reference(wav, int(sample_rate))

    def build_prompt(
        self,
        text: str,
        prompt_speech: np.ndarray | str | Path | None = None,
        prompt_text: str | None = None,
        *,
        prompt_sample_rate: int = 16000,
        gender: str | None = None,
        pitch: str | None = None,
        speed: str | None = None,
    ) -> SynthesisPrompt:
        """Control mode when ``gender`` is given (as upstream, the reference is then ignored), else clone."""
        if not isinstance(text, str) or not text.strip():
            raise ValueError("text is empty: give the words to speak")
        if gender is not None:
            return SynthesisPrompt(prompts.build_control_prompt(text, gender, pitch, speed), None)  # type: ignore[arg-type]
        if pitch is not None or speed is not None:
            raise ValueError("pitch and speed select controllable TTS, which also needs gender")
        if prompt_speech is None:
            raise ValueError("give either prompt_speech (voice cloning) or gender/pitch/speed (voice creation)")
        wav = self._reference(prompt_speech, prompt_sample_rate)
        global_tokens, semantic_tokens = self.audio_tokenizer.tokenize(wav)
        prompt = prompts.build_clone_prompt(text, global_tokens, semantic_tokens, prompt_text)
        return SynthesisPrompt(prompt, global_tokens.reshape(1, -1).long())

    # ------------------------------------------------------------------ synthesis
    def _globals(self, request: SynthesisPrompt, parsed: list[int]) -> torch.Tensor:
        if request.global_tokens is not None:
            return request.global_tokens
        if len(parsed) != prompts.NUM_GLOBAL_TOKENS:
            raise SynthesisError(f"the LLM produced {len(parsed)} global tokens; voice creation needs exactly "
                                 f"{prompts.NUM_GLOBAL_TOKENS} (try another seed or a larger max_new_tokens)")
        return torch.tensor([parsed], dtype=torch.long)

    def vocode(self, global_tokens: torch.Tensor, semantic: list[int]) -> np.ndarray:
        """global (1, 32) int64 + semantic ids -> (320 * len(semantic),) float32 at 16 kHz."""
        if not semantic:
            raise SynthesisError("the LLM produced no semantic tokens, so there is nothing to vocode")
        return self.audio_tokenizer.detokenize(global_tokens, torch.tensor(semantic, dtype=torch.long))

    def inference(
        self,
        text: str,
        prompt_speech: np.ndarray | str | Path | None = None,
        prompt_text: str | None = None,
        *,
        prompt_sample_rate: int = 16000,
        gender: str | None = None,
        pitch: str | None = None,
        speed: str | None = None,
        params: GenerationParams = DEFAULT_GENERATION,
    ) -> np.ndarray:
        """Speech for ``text``: (320 * T,) float32 in [-1, 1] at 16 kHz.

        prompt_speech: reference audio, (T,) or (T, channels) float at ``prompt_sample_rate`` or a
        file path; prompt_text: its transcript (selects the longer clone template); params: how the
        LLM samples (the official defaults unless given).
        """
        request = self.build_prompt(text, prompt_speech, prompt_text, prompt_sample_rate=prompt_sample_rate,
                                    gender=gender, pitch=pitch, speed=speed)
        generated = self.lm.generate(request.text, params)
        decoded = str(self.lm.tokenizer.decode(generated, skip_special_tokens=True))
        semantic = prompts.parse_semantic_tokens(decoded)
        global_tokens = self._globals(request, prompts.parse_global_tokens(decoded))
        return self.vocode(global_tokens, semantic)

    def stream(
        self,
        text: str,
        prompt_speech: np.ndarray | str | Path | None = None,
        prompt_text: str | None = None,
        *,
        prompt_sample_rate: int = 16000,
        gender: str | None = None,
        pitch: str | None = None,
        speed: str | None = None,
        params: GenerationParams = DEFAULT_GENERATION,
        schedule: ChunkSchedule = OFFICIAL_SCHEDULE,
        crossfade: bool = False,
    ) -> Iterator[np.ndarray]:
        """Yield 16 kHz float32 audio while the LLM is still generating.

        ``schedule`` groups the semantic tokens into chunks (the official runtime's 50 -> 400 ->
        1500 tokens unless given). With ``crossfade=False`` (the official wire format) each yield
        is one vocoded chunk and consecutive chunks overlap by ``schedule.overlap_samples`` (1600
        by default): join them with ``sparktts.streaming.crossfade_join``. With ``crossfade=True``
        the yields are already joined and simply concatenate. The semantic ids are those
        ``inference`` would vocode for the same ``params``; only the vocoder context at chunk
        edges differs.
        """
        request = self.build_prompt(text, prompt_speech, prompt_text, prompt_sample_rate=prompt_sample_rate,
                                    gender=gender, pitch=pitch, speed=speed)
        parsed_globals: list[int] = []

        def semantic_stream() -> Iterator[int]:
            for token in self.lm.stream(request.text, params):
                code = self.lm.semantic_index(token)
                if code is not None:
                    yield code
                elif request.control and (code := self.lm.global_index(token)) is not None:
                    parsed_globals.append(code)

        fader = Crossfader(schedule.overlap_samples) if crossfade else None
        emitted = False
        for chunk in schedule.split(semantic_stream()):
            wav = self.vocode(self._globals(request, parsed_globals), chunk)
            emitted = True
            yield fader.push(wav) if fader is not None else wav
        if not emitted:
            raise SynthesisError("the LLM produced no semantic tokens, so there is nothing to vocode")
        if fader is not None:
            yield fader.finish()
