"""Write the ``2026`` profile's goldens by running the official WebUI ``main`` on the tiny models.

    git --git-dir=<mirror> archive main | tar -x -C /tmp/rvc_main     # the official code, not committed
    pip install --no-deps --target /tmp/rvc_main_deps librosa==0.10.2.post1 transformers==4.49.0 \
        tokenizers==0.21.0 huggingface_hub==0.29.3                     # main's pins; never into .venv
    PYTHONPATH=/tmp/rvc_main_deps .venv/bin/python tools/make_rvc_2026_goldens.py /tmp/rvc_main \
        --fixtures ../shared/fixtures --out tests/rvc_pipeline/goldens/rvc_2026_tiny

It reuses the models of ``../shared/fixtures`` (the tiny v2 voice, RMVPE, index and input of
``rvc_pipeline_tiny``), gives main its HuBERT in the new ``assets/hubert_base`` layout (converted
from the fixture's ``hubert_base.pt`` by ``rvc.infer.hubert.write_transformers_folder``, which the
parity test repeats), and calls ``VC.get_vc`` + ``VC.vc_single`` as the WebUI does. As for the
20240604 goldens, only three things are replaced: ``load_audio`` returns the fixture's array (no
ffmpeg), the RMVPE network is built at the tiny size, and the synthesizer's random draws are
zeros while ``net_g.infer`` runs (deterministic mode). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import types
from collections.abc import Callable, Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import torch

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TINY_RMVPE = {"n_blocks": 2, "n_gru": 1, "kernel_size": (2, 2), "en_de_layers": 5, "inter_layers": 2,
              "in_channels": 1, "en_out_channels": 1}  # fmt: skip  # ../shared/fixtures/rmvpe_tiny/README.md
CPU_CONFIG = {"x_pad": 1, "x_query": 6, "x_center": 38, "x_max": 41}
SPLIT_CONFIG = {"x_pad": 1, "x_query": 1, "x_center": 2, "x_max": 3}
BASE = {"f0_up_key": 3, "f0_method": "rmvpe", "index_rate": 0.75, "resample_sr": 0, "rms_mix_rate": 0.25,
        "protect": 0.33}  # fmt: skip
CASES: dict[str, dict[str, Any]] = {
    "rmvpe": {},
    "pm": {"f0_method": "pm"},
    "rmvpe_noindex": {"index_rate": 0.0},
    "rmvpe_resample16k": {"resample_sr": 16000},
    "rmvpe_split": {"config": SPLIT_CONFIG},
    "pm_protect05": {"f0_method": "pm", "protect": 0.5},
}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@contextlib.contextmanager
def _zero_draws(log: list[str]) -> Iterator[None]:
    """torch's random draws return zeros (and are logged) inside the block: the deterministic mode."""
    names = ("rand", "randn", "rand_like", "randn_like")
    saved = {name: getattr(torch, name) for name in names}

    def zeros_for(name: str) -> Callable[..., torch.Tensor]:
        def draw(*args: Any, **kwargs: Any) -> torch.Tensor:
            result = saved[name](*args, **kwargs)
            log.append(f"{name}{list(result.shape)}")
            return torch.zeros_like(result)

        return draw

    for name in names:
        setattr(torch, name, zeros_for(name))
    try:
        yield
    finally:
        for name, function in saved.items():
            setattr(torch, name, function)


def _import_official(official: Path, audio: np.ndarray) -> types.ModuleType:
    sys.path.insert(0, str(official))
    stub = types.ModuleType("infer.audio")  # main's loader needs ffmpeg/av: hand it the decoded array
    stub.load_audio = lambda _path, _sr: audio.copy()  # type: ignore[attr-defined]
    stub.wav2 = None  # type: ignore[attr-defined]
    sys.modules["infer.audio"] = stub
    return importlib.import_module("infer.vc.modules")


def _tiny_rmvpe(rmvpe_path: Path) -> Any:
    """main's ``RMVPE`` with its network built at the tiny size (the loader hard-codes E2E(4, 1, (2, 2)))."""
    official_rmvpe: Any = importlib.import_module("infer.rmvpe")  # the official code, untyped

    full_size = official_rmvpe.E2E

    class TinyE2E(full_size):  # type: ignore[misc, valid-type]
        def __init__(self, *_args: Any, **_kwargs: Any) -> None:
            official_rmvpe.E2E = full_size  # E2E.__init__ calls super(E2E, self): the real class again
            full_size.__init__(self, **TINY_RMVPE)

    official_rmvpe.E2E = TinyE2E
    try:
        return official_rmvpe.RMVPE(str(rmvpe_path), is_half=False, device="cpu")
    finally:
        official_rmvpe.E2E = full_size


def _git_head(official: Path) -> str:
    marker = official / "OFFICIAL_COMMIT"
    if marker.is_file():
        return marker.read_text().strip()
    result = subprocess.run(["git", "-C", str(official), "rev-parse", "HEAD"], capture_output=True, text=True,
                            check=False)  # fmt: skip
    return result.stdout.strip() or "unknown (pass --commit)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("official", type=Path, help="a checkout or archive of the WebUI's main")
    parser.add_argument("--fixtures", type=Path, default=PROJECT_ROOT.parent / "shared" / "fixtures")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "tests/rvc_pipeline/goldens/rvc_2026_tiny")
    parser.add_argument("--commit", default=None, help="the official commit, when the copy has no .git")
    args = parser.parse_args(argv)
    official, fixtures, out = args.official.resolve(), args.fixtures.resolve(), args.out.resolve()
    pipeline_dir = fixtures / "rvc_pipeline_tiny"
    voice = fixtures / "rvc_synth_v2_tiny" / "tiny_v2_40k.pth"
    rmvpe_path = fixtures / "rmvpe_tiny" / "rmvpe.pt"
    index_path = pipeline_dir / "added_IVF5_Flat_nprobe_1_tiny_v2.index"
    audio = np.load(pipeline_dir / "inputs.npz")["audio"]

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    import faiss  # noqa: PLC0415

    faiss.omp_set_num_threads(1)
    sys.path.insert(0, str(PROJECT_ROOT))
    from rvc.infer.hubert import write_transformers_folder  # noqa: PLC0415

    out.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {
        "official": {"repository": "RVC-Project/Retrieval-based-Voice-Conversion-WebUI", "branch": "main",
                     "commit": args.commit or _git_head(official)},
        "environment": {"python": platform.python_version(), "torch": torch.__version__,
                        "numpy": np.__version__, "faiss": faiss.__version__},
        "inputs": {"voice": f"rvc_synth_v2_tiny/{voice.name}", "voice_sha256": _sha256(voice),
                   "rmvpe_sha256": _sha256(rmvpe_path), "index_sha256": _sha256(index_path),
                   "hubert_sha256": _sha256(pipeline_dir / "hubert_base.pt"),
                   "audio": "rvc_pipeline_tiny/inputs.npz", "rmvpe_size": {**TINY_RMVPE, "kernel_size": [2, 2]}},
        "cases": {},
    }  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="rvc2026_") as scratch_name:
        scratch = Path(scratch_name)
        hubert_folder = write_transformers_folder(pipeline_dir / "hubert_base.pt", scratch / "hubert_base",
                                                  official_layout=True)  # fmt: skip
        os.environ["weight_root"] = str(voice.parent)
        os.environ["rmvpe_root"] = str(rmvpe_path.parent)
        os.chdir(official)  # the WebUI runs from its root (i18n reads ./i18n/locale)
        modules = _import_official(official, audio)
        official_hubert: Any = importlib.import_module("infer.hubert")

        official_hubert.HUBERT_MODEL_PATH = hubert_folder
        meta["environment"].update(librosa=version("librosa"), transformers=version("transformers"))
        for case, changes in CASES.items():
            settings = {**BASE, **{k: v for k, v in changes.items() if k != "config"}}
            config = types.SimpleNamespace(device="cpu", is_half=False, **changes.get("config", CPU_CONFIG))
            vc = modules.VC(config)
            vc.get_vc(voice.name)
            vc.pipeline.model_rmvpe = _tiny_rmvpe(rmvpe_path)
            draws: list[str] = []
            recorded: dict[str, np.ndarray] = {}
            get_f0 = vc.pipeline.get_f0

            def recording_get_f0(*f0_args: Any, _get_f0: Any = get_f0, _recorded: Any = recorded) -> Any:
                pitch, pitchf = _get_f0(*f0_args)
                _recorded["pitch_full"], _recorded["pitchf_full"] = pitch.copy(), pitchf.copy()
                return pitch, pitchf

            vc.pipeline.get_f0 = recording_get_f0
            infer = vc.net_g.infer

            def zeroed_infer(*infer_args: Any, _infer: Any = infer, _draws: list[str] = draws) -> Any:
                with _zero_draws(_draws):
                    return _infer(*infer_args)

            vc.net_g.infer = zeroed_infer
            status, (sr_out, audio_int16) = vc.vc_single(
                0, "input.wav", settings["f0_up_key"], settings["f0_method"], str(index_path),
                settings["index_rate"], settings["resample_sr"], settings["rms_mix_rate"], settings["protect"],
            )  # fmt: skip
            if audio_int16 is None:
                raise SystemExit(f"case {case}: the official inference failed:\n{status}")
            np.savez_compressed(out / f"expected_{case}.npz", audio_int16=np.asarray(audio_int16),
                                sr_out=np.int64(sr_out), **recorded)  # fmt: skip
            meta["cases"][case] = {"settings": settings, "config": dict(vars(config)), "zeroed_draws": draws,
                                   "samples": int(len(audio_int16)), "sr_out": int(sr_out)}  # fmt: skip
            print(f"{case}: {len(audio_int16)} samples at {sr_out} Hz, draws {draws}")
    for case in CASES:
        meta["cases"][case]["sha256"] = _sha256(out / f"expected_{case}.npz")
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
