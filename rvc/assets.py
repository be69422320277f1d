"""Which model assets are present, and whether they are the generated demo ones.

Demo assets are tiny random-weight models in the official layouts; they make
every code path run but produce noise, not speech. The generator leaves a
marker file in each folder it writes, and everything that reports on the
service (start-up log, /health, /status) reads it from here, so running on
demo weights is never hidden.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rvc.settings import Settings

__all__ = ["DEMO_MARKER", "DEMO_NOTICE", "AssetReport", "inspect_assets", "mark_demo"]

DEMO_MARKER = "DEMO_ASSETS_RANDOM_WEIGHTS.txt"
DEMO_NOTICE = (
    "demo assets (random weights): the voice is noise until the real Spark-TTS-0.5B, hubert_base.pt, "
    "rmvpe.pt and an RVC voice are downloaded (python tools/download_all_assets.py)"
)


@dataclass(frozen=True)
class AssetReport:
    spark_model: bool
    voice: bool
    hubert: bool
    rmvpe: bool
    demo_folders: tuple[str, ...] = field(default_factory=tuple)

    @property
    def complete(self) -> bool:
        return self.spark_model and self.voice and self.hubert and self.rmvpe

    @property
    def demo(self) -> bool:
        return bool(self.demo_folders)

    @property
    def missing(self) -> list[str]:
        names = {"spark_model": "Spark-TTS model folder", "voice": "RVC voice", "hubert": "hubert_base.pt (or hubert_base/)",
                 "rmvpe": "rmvpe.pt"}
        return [label for key, label in names.items() if not getattr(self, key)]


def inspect_assets(settings: Settings) -> AssetReport:
    """Look at the configured folders; read nothing heavy."""
    folders = [settings.spark_model_dir, settings.weights_dir, settings.hubert_path.parent, settings.rmvpe_path.parent]
    return AssetReport(
        spark_model=(settings.spark_model_dir / "config.yaml").is_file(),
        voice=(settings.weights_dir / settings.rvc_model).is_file(),
        hubert=settings.content_encoder_path.exists(),  # hubert_base.pt or main's hubert_base/ folder
        rmvpe=settings.rmvpe_path.is_file(),
        demo_folders=tuple(str(folder) for folder in folders if (folder / DEMO_MARKER).is_file()),
    )


def mark_demo(folder: Path) -> None:
    """Leave the marker that says this folder holds generated random weights."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / DEMO_MARKER).write_text(DEMO_NOTICE + "\n")
