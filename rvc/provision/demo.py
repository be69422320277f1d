"""Demo assets: tiny random-weight models in the official layouts, for machines that cannot download.

They make every code path run (Triton loads the Spark-TTS folder, workers load
the voice, HuBERT and RMVPE) but the output is noise. Each folder that
receives generated files gets ``rvc.assets``' marker, which the start-up log,
``/health`` and ``/status`` report; a later real download removes the marker
again (``clear_demo_markers``).

Units, so that a real file is never replaced without ``force``:

* the Spark-TTS folder is one model: it is generated when its ``config.yaml``
  is absent (the downloader writes ``config.yaml`` last, so its presence means
  a complete real folder); ``.part`` files of an interrupted download are left
  alone for the next download to resume;
* the RVC files (voice ``.pth``, its ``.index``, ``hubert_base.pt``, ``rmvpe.pt``)
  are generated together in a scratch folder and each one is copied into place
  only where that file is absent.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from rvc.assets import DEMO_MARKER, mark_demo
from rvc.provision.sync import Status, SyncReport
from rvc.settings import Settings

__all__ = ["DemoResult", "clear_demo_markers", "make_demo_assets", "retire_demo_spark_config"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoResult:
    written: tuple[Path, ...]  # files generated into the settings' folders
    kept: tuple[Path, ...]  # files left as they were (already present, no --force)
    marked: tuple[Path, ...]  # folders now carrying the demo marker


def _copy_into_place(source_root: Path, target_root: Path, *, force: bool) -> tuple[list[Path], list[Path]]:
    written, kept = [], []
    for source in sorted(path for path in source_root.rglob("*") if path.is_file()):
        target = target_root / source.relative_to(source_root)
        if target.exists() and not force:
            kept.append(target)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        written.append(target)
    return written, kept


def _spark_demo(settings: Settings, *, force: bool, seed: int) -> tuple[list[Path], list[Path]]:
    model_dir = settings.spark_model_dir
    if (model_dir / "config.yaml").is_file() and not force:
        return [], [model_dir]
    from sparktts.demo import write_demo_model

    with tempfile.TemporaryDirectory(prefix="demo-spark-") as scratch:
        generated = Path(scratch) / "Spark-TTS-0.5B"
        write_demo_model(generated, seed=seed)
        # config.yaml last: until it lands, the folder does not look complete to anyone
        config = generated / "config.yaml"
        body = config.read_bytes()
        config.unlink()
        written, _ = _copy_into_place(generated, model_dir, force=True)
        (model_dir / "config.yaml").write_bytes(body)
    return [*written, model_dir / "config.yaml"], []


def _rvc_demo(settings: Settings, *, force: bool, seed: int) -> tuple[list[Path], list[Path]]:
    voice = settings.voice_name
    targets = [settings.weights_dir / f"{voice}.pth", settings.weights_dir / f"{voice}.index",
               settings.hubert_path, settings.rmvpe_path]
    if not force and all(target.exists() for target in targets):
        return [], targets
    from rvc.infer.demo_assets import write_demo_rvc_assets

    written, kept = [], []
    with tempfile.TemporaryDirectory(prefix="demo-rvc-") as scratch:
        weights, assets = Path(scratch) / "weights", Path(scratch) / "assets"
        write_demo_rvc_assets(weights, assets, voice_name=voice, seed=seed)
        for source_root, target_root in ((weights, settings.weights_dir), (assets, settings.assets_dir)):
            done, left = _copy_into_place(source_root, target_root, force=force)
            written += done
            kept += left
    return written, kept


def make_demo_assets(settings: Settings, *, force: bool = False, seed: int = 0) -> DemoResult:
    """Generate whatever assets are absent (everything with ``force``) and mark those folders."""
    spark_written, spark_kept = _spark_demo(settings, force=force, seed=seed)
    rvc_written, rvc_kept = _rvc_demo(settings, force=force, seed=seed)
    written = [*spark_written, *rvc_written]
    folders = {settings.spark_model_dir} if spark_written else set()
    folders |= {path.parent for path in rvc_written}
    for folder in sorted(folders):
        mark_demo(folder)
        logger.warning("%s now holds demo assets (random weights)", folder)
    return DemoResult(tuple(written), tuple([*spark_kept, *rvc_kept]), tuple(sorted(folders)))


def clear_demo_markers(report: SyncReport, settings: Settings) -> list[Path]:
    """Remove the demo marker from folders whose real files a download run has completed.

    The Spark folder counts as real when every Spark file is present or was
    downloaded; ``hubert/`` and ``rmvpe/`` when their file is; ``WEIGHTS_DIR``
    only when the voice the settings name (``RVC_MODEL``) came from the hub,
    since other voices there may still be generated ones.
    """
    good = {Status.PRESENT, Status.DOWNLOADED, Status.SKIPPED}
    real: dict[Path, bool] = {}
    for outcome in report.outcomes:
        destination = outcome.remote.destination
        in_spark = destination.is_relative_to(settings.spark_model_dir)
        folder = settings.spark_model_dir if in_spark else destination.parent
        real[folder] = real.get(folder, True) and outcome.status in good
    fetched = {outcome.remote.destination for outcome in report.outcomes}
    voice = settings.weights_dir / settings.rvc_model
    if voice not in fetched:
        real.pop(settings.weights_dir, None)
    elif real.get(settings.weights_dir) and (settings.weights_dir / DEMO_MARKER).is_file():
        stale_index = voice.with_suffix(".index")
        if stale_index not in fetched and stale_index.is_file():
            stale_index.unlink()  # the generated index does not belong to the real voice
            logger.info("%s: removed the demo index of the now real voice", stale_index)
    return _unmark(folder for folder, ok in real.items() if ok)


def retire_demo_spark_config(settings: Settings) -> bool:
    """Before real Spark files arrive in a demo folder: drop the demo ``config.yaml``.

    Otherwise a download that stops half-way leaves demo config + some real
    weights, a folder that looks complete and cannot load. Without the config
    the folder reads as missing, and the demo generator rebuilds it whole.
    """
    model_dir = settings.spark_model_dir
    config = model_dir / "config.yaml"
    if (model_dir / DEMO_MARKER).is_file() and config.is_file():
        config.unlink()
        return True
    return False


def _unmark(folders: Iterable[Path]) -> list[Path]:
    cleared = []
    for folder in folders:
        marker = folder / DEMO_MARKER
        if marker.is_file():
            marker.unlink()
            logger.info("%s: real assets downloaded; demo marker removed", folder)
            cleared.append(folder)
    return cleared
