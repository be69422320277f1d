"""Fixtures for the RVC conversion pipeline tests: golden folders, synthetic voices, threads."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

SAMPLE_RATE = 16000


@pytest.fixture(scope="session")
def rmvpe_tiny(shared_fixtures: Path) -> Path:
    return shared_fixtures / "rmvpe_tiny"


@pytest.fixture(scope="session")
def rmvpe_model(rmvpe_tiny: Path):
    from rvc.infer.rmvpe import RMVPE

    return RMVPE.from_pretrained(rmvpe_tiny / "rmvpe.pt")


def harmonic_tone(f0: float | np.ndarray, seconds: float = 1.0, *, seed: int = 0) -> np.ndarray:
    """(N,) float32 at 16 kHz: 5 harmonics of ``f0`` (Hz, scalar or per-sample) plus faint noise."""
    n = int(seconds * SAMPLE_RATE)
    freq = np.broadcast_to(np.asarray(f0, dtype=np.float64), (n,))
    phase = 2 * np.pi * np.cumsum(freq) / SAMPLE_RATE
    wave = sum((0.3 / k) * np.sin(k * phase) for k in range(1, 6))
    wave = wave + 0.001 * np.random.default_rng(seed).standard_normal(n)
    return wave.astype(np.float32)


@pytest.fixture(scope="session")
def espeak_speech(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """A spoken English sentence from espeak-ng, as (N,) float32 at 16 kHz."""
    from rvc.audio import resample

    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RuntimeError("espeak-ng is not installed (apt-get install -y espeak-ng)")
    folder = tmp_path_factory.mktemp("espeak")
    wav_path = folder / "speech.wav"
    text = "The quick brown fox jumps over the lazy dog, and then it runs away."
    subprocess.run(
        [exe, "-v", "en-us", "-s", "150", "-w", str(wav_path), text],
        check=True,
        cwd=folder,
        capture_output=True,
        timeout=60,
    )
    import soundfile as sf

    wav, sr = sf.read(wav_path, dtype="float32")
    return resample(wav, sr, SAMPLE_RATE).astype(np.float32)


@pytest.fixture(scope="session")
def demo_assets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The demo voice, index, fairseq HuBERT and RMVPE, written once per session."""
    from rvc.infer.demo_assets import write_demo_rvc_assets

    root = tmp_path_factory.mktemp("demo")
    return write_demo_rvc_assets(root / "weights", root / "assets", seed=0)


@pytest.fixture(scope="session")
def demo_converter(demo_assets: dict[str, Path]):
    """A converter on the demo HuBERT/RMVPE with the demo voice resident as "demo"."""
    from rvc.infer.converter import ConverterAssets, VoiceConverter

    converter = VoiceConverter(
        ConverterAssets(demo_assets["hubert"], demo_assets["rmvpe"]), crepe_model="tiny"
    )
    converter.load_voice("demo", demo_assets["voice"], demo_assets["index"])
    return converter
