"""Demo asset provisioning: only absent files are generated, folders are marked, a real download unmarks.

The generators themselves belong to sparktts.demo and rvc.infer.demo_assets; most
tests here swap in stand-ins that write the same file names, so they pin the
provisioning rules alone. ``test_cli_generates_loadable_demo_assets`` runs the
real generators through the command line.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from rvc.assets import DEMO_MARKER, inspect_assets
from rvc.provision.catalog import RVC_BASE_REPO, parse_voice_spec
from rvc.provision.demo import clear_demo_markers, make_demo_assets, retire_demo_spark_config
from rvc.provision.hub import HubClient
from rvc.provision.sync import plan_files, sync_files
from rvc.settings import Settings
from tests.deploy.conftest import VOICE_REPO, RunTool
from tests.deploy.fakehub import FakeHub

DEMO_BYTES = b"demo random weights"


def _write_spark(out_dir: Path, *, seed: int = 0) -> Path:
    for name in ("config.yaml", "BiCodec/model.safetensors", "LLM/model.safetensors"):
        (out_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (out_dir / name).write_bytes(DEMO_BYTES)
    return out_dir


def _write_rvc(weights_dir: Path, assets_dir: Path, *, voice_name: str = "x", seed: int = 0) -> None:
    for path in (weights_dir / f"{voice_name}.pth", weights_dir / f"{voice_name}.index",
                 assets_dir / "hubert" / "hubert_base.pt", assets_dir / "rmvpe" / "rmvpe.pt"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(DEMO_BYTES)


@pytest.fixture
def stand_in_generators(monkeypatch: pytest.MonkeyPatch) -> None:
    spark = types.ModuleType("sparktts.demo")
    spark.write_demo_model = _write_spark  # type: ignore[attr-defined]
    rvc_demo = types.ModuleType("rvc.infer.demo_assets")
    rvc_demo.write_demo_rvc_assets = _write_rvc  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "sparktts.demo", spark)
    monkeypatch.setitem(sys.modules, "rvc.infer.demo_assets", rvc_demo)


def marked(settings: Settings) -> set[Path]:
    return {Path(folder) for folder in inspect_assets(settings).demo_folders}


def all_folders(settings: Settings) -> set[Path]:
    return {settings.spark_model_dir, settings.weights_dir, settings.hubert_path.parent, settings.rmvpe_path.parent}


@pytest.mark.usefixtures("stand_in_generators")
def test_fresh_machine_gets_every_asset_and_every_folder_marked(settings: Settings) -> None:
    result = make_demo_assets(settings)

    report = inspect_assets(settings)
    assert report.complete and report.demo
    assert marked(settings) == all_folders(settings) == set(result.marked)
    assert (settings.weights_dir / f"{settings.voice_name}.index").read_bytes() == DEMO_BYTES
    assert "random weights" in (settings.spark_model_dir / DEMO_MARKER).read_text()


@pytest.mark.usefixtures("stand_in_generators")
def test_second_run_changes_nothing(settings: Settings) -> None:
    make_demo_assets(settings)
    again = make_demo_assets(settings)
    assert again.written == () and again.marked == ()


@pytest.mark.usefixtures("stand_in_generators")
def test_real_files_are_kept_and_their_folders_stay_unmarked(settings: Settings) -> None:
    settings.hubert_path.parent.mkdir(parents=True)
    settings.hubert_path.write_bytes(b"real hubert")
    (settings.spark_model_dir / "LLM").mkdir(parents=True)
    (settings.spark_model_dir / "config.yaml").write_bytes(b"real config")

    result = make_demo_assets(settings)

    assert settings.hubert_path.read_bytes() == b"real hubert"
    assert (settings.spark_model_dir / "config.yaml").read_bytes() == b"real config"
    assert marked(settings) == {settings.weights_dir, settings.rmvpe_path.parent}
    assert settings.hubert_path in result.kept


@pytest.mark.usefixtures("stand_in_generators")
def test_force_overwrites_real_files(settings: Settings) -> None:
    settings.hubert_path.parent.mkdir(parents=True)
    settings.hubert_path.write_bytes(b"real hubert")
    make_demo_assets(settings, force=True)
    assert settings.hubert_path.read_bytes() == DEMO_BYTES
    assert marked(settings) == all_folders(settings)


@pytest.mark.usefixtures("stand_in_generators")
def test_partial_download_is_left_to_resume(settings: Settings) -> None:
    part = settings.spark_model_dir / "LLM" / "model.safetensors.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"first half")
    make_demo_assets(settings)
    assert part.read_bytes() == b"first half"
    assert (settings.spark_model_dir / "config.yaml").read_bytes() == DEMO_BYTES


@pytest.mark.usefixtures("stand_in_generators")
def test_real_download_removes_the_demo_markers(hub: FakeHub, settings: Settings) -> None:
    make_demo_assets(settings)
    assert retire_demo_spark_config(settings)
    assert not inspect_assets(settings).spark_model  # a half-finished download must not look complete
    voice = f"{settings.voice_name}.pth"
    hub.add(VOICE_REPO, voice, b"real voice")

    with HubClient(hub.url, retry_wait_s=0) as client:
        files = plan_files(client, settings, groups=["spark", "hubert", "rmvpe", "voices"],
                           voices=[parse_voice_spec(f"{VOICE_REPO}:{voice}")])
        report = sync_files(client, files)
    cleared = clear_demo_markers(report, settings)

    assert report.exit_code == 0
    assert set(cleared) == all_folders(settings)
    assert not inspect_assets(settings).demo and inspect_assets(settings).complete
    assert settings.hubert_path.read_bytes() == hub.lookup(RVC_BASE_REPO, "hubert_base.pt").content
    # the generated index does not fit the real voice and no real index was named: it is gone
    assert not (settings.weights_dir / f"{settings.voice_name}.index").exists()


@pytest.mark.usefixtures("stand_in_generators")
def test_downloading_another_voice_keeps_the_weights_marker(hub: FakeHub, settings: Settings) -> None:
    make_demo_assets(settings)
    with HubClient(hub.url, retry_wait_s=0) as client:
        files = plan_files(client, settings, groups=["voices"],
                           voices=[parse_voice_spec(f"{VOICE_REPO}:Wolf/Wolf_e300.pth")])
        report = sync_files(client, files)
    assert clear_demo_markers(report, settings) == []
    assert settings.weights_dir in marked(settings)


def test_cli_generates_loadable_demo_assets(run_tool: RunTool, settings: Settings) -> None:
    result = run_tool("make_demo_assets", timeout=300, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    assert result.returncode == 0, result.stderr
    assert "random weights" in result.stdout
    report = inspect_assets(settings)
    assert report.complete and marked(settings) == all_folders(settings)

    # what landed in the settings' folders loads with the real loaders
    from rvc.infer.hubert import ContentEncoder
    from rvc.infer.index import FeatureIndex
    from rvc.infer.rmvpe import RMVPE
    from rvc.infer.synthesizer import load_voice_checkpoint
    from sparktts.audio_tokenizer import BiCodecTokenizer

    voice = load_voice_checkpoint(settings.weights_dir / settings.rvc_model)
    assert voice.version == "v2" and voice.if_f0
    FeatureIndex.load(settings.weights_dir / f"{settings.voice_name}.index")
    ContentEncoder.from_fairseq(settings.hubert_path)
    RMVPE.from_pretrained(settings.rmvpe_path)
    assert BiCodecTokenizer.from_pretrained(settings.spark_model_dir).sample_rate == 16000

    again = run_tool("make_demo_assets", timeout=300, OMP_NUM_THREADS="1")
    assert again.returncode == 0 and "nothing to do" in again.stdout
