"""tools/download_all_assets.py and rvc.provision against a fake hub on loopback (never the network)."""

from __future__ import annotations

import io
import socket
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from rvc.errors import InvalidInput
from rvc.provision.catalog import (
    ASSET_GROUPS,
    RVC_BASE_REPO,
    SPARK_OPTIONAL_FILES,
    SPARK_REPO,
    SPARK_REQUIRED_FILES,
    VoiceSource,
    parse_voice_spec,
)
from rvc.provision.hub import HubClient, part_path
from rvc.provision.progress import ProgressBar, format_bytes
from rvc.provision.sync import Status, SyncReport, plan_files, sync_files
from rvc.settings import Settings
from tests.conftest import free_port
from tests.deploy.conftest import BIG_FILE, VOICE_REPO, RunTool, spark_tree
from tests.deploy.fakehub import FakeHub

VOICE_SPEC = f"{VOICE_REPO}:Wolf/Wolf_e300.pth,Wolf/added_IVF1_Flat_nprobe_1_Wolf_v2.index"


def sync_with(
    hub: FakeHub,
    settings: Settings,
    *,
    groups: Sequence[str] = ASSET_GROUPS,
    voices: Sequence[VoiceSource] = (),
    dry_run: bool = False,
    verify: bool = False,
) -> SyncReport:
    with HubClient(hub.url, retries=2, retry_wait_s=0) as client:
        files = plan_files(client, settings, groups=groups, voices=voices)
        return sync_files(client, files, dry_run=dry_run, verify_existing=verify)


def outcome_of(report: SyncReport, suffix: str) -> Status:
    (match,) = [o for o in report.outcomes if o.remote.label.endswith(suffix)]
    return match.status


def big_destination(settings: Settings) -> Path:
    return settings.spark_model_dir / BIG_FILE


def body_transfers(hub: FakeHub) -> list[object]:
    """GET requests for file contents (not the listing API)."""
    return [r for r in hub.requests if r.method == "GET" and "/api/" not in r.path]


def all_files_under(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file()) if root.exists() else []


# --- full runs through the command line --------------------------------------------------------------


def test_full_download_writes_every_file_where_the_settings_say(
    hub: FakeHub, settings: Settings, run_tool: RunTool
) -> None:
    result = run_tool("download_all_assets", "--voice", VOICE_SPEC, HF_ENDPOINT=hub.url)
    assert result.returncode == 0, result.stderr + result.stdout

    for path, (content, _) in spark_tree().items():
        target = settings.spark_model_dir / path
        if path.startswith(("src/", ".git")):
            assert not target.exists(), f"{path} is not part of the model layout"
        else:
            assert target.read_bytes() == content, path
    assert settings.hubert_path.read_bytes() == hub.lookup(RVC_BASE_REPO, "hubert_base.pt").content
    assert settings.rmvpe_path.read_bytes() == hub.lookup(RVC_BASE_REPO, "rmvpe.pt").content
    for name in ("config.json", "preprocessor_config.json", "pytorch_model.bin"):
        assert (settings.hubert_folder / name).read_bytes() == hub.lookup(RVC_BASE_REPO, f"hubert_base/{name}").content
    assert settings.content_encoder_path == settings.hubert_folder  # complete: the workers load main's layout
    # the voice is saved under its own name, its index as <voice>.index beside it
    assert (settings.weights_dir / "Wolf_e300.pth").read_bytes() == hub.lookup(VOICE_REPO, "Wolf/Wolf_e300.pth").content
    index = hub.lookup(VOICE_REPO, "Wolf/added_IVF1_Flat_nprobe_1_Wolf_v2.index").content
    assert (settings.weights_dir / "Wolf_e300.index").read_bytes() == index
    root = settings.weights_dir.parent
    assert not [p for p in all_files_under(root) if p.name.endswith(".part")]
    assert "downloaded" in result.stdout and "FAILED" not in result.stdout
    # LFS files went through the redirect to the CDN path, small ones were served directly
    assert hub.gets("/cdn/" + SPARK_REPO + "/" + BIG_FILE)
    assert not hub.gets("/cdn/" + SPARK_REPO + "/config.yaml")


def test_second_run_skips_complete_files(hub: FakeHub, settings: Settings) -> None:
    first = sync_with(hub, settings)
    assert first.exit_code == 0 and first.count(Status.DOWNLOADED) == len(first.outcomes)
    body_gets = len(body_transfers(hub))

    second = sync_with(hub, settings)

    assert {o.status for o in second.outcomes} == {Status.PRESENT}
    assert len(body_transfers(hub)) == body_gets  # only HEADs and the listing this time


def test_dry_run_writes_nothing_and_transfers_nothing(hub: FakeHub, settings: Settings, run_tool: RunTool) -> None:
    result = run_tool("download_all_assets", "--dry-run", "--voice", VOICE_SPEC, HF_ENDPOINT=hub.url)
    assert result.returncode == 0, result.stderr
    assert not settings.weights_dir.parent.exists()
    assert "would download" in result.stdout and "nothing was written" in result.stdout
    assert body_transfers(hub) == []


# --- resuming -------------------------------------------------------------------------------------------


def test_dropped_transfer_resumes_with_a_range_request(hub: FakeHub, settings: Settings) -> None:
    big = hub.lookup(SPARK_REPO, BIG_FILE)
    big.drop_after, big.drops_left = 1_000_000, 1

    report = sync_with(hub, settings, groups=["spark"])

    assert report.exit_code == 0
    assert big_destination(settings).read_bytes() == big.content
    ranges = [r.range for r in hub.gets(BIG_FILE) if "/cdn/" in r.path]
    assert ranges == [None, "bytes=1000000-"]


def test_partial_file_from_an_earlier_run_is_continued(hub: FakeHub, settings: Settings) -> None:
    big = hub.lookup(SPARK_REPO, BIG_FILE)
    part = part_path(big_destination(settings))
    part.parent.mkdir(parents=True)
    part.write_bytes(big.content[:700_000])

    report = sync_with(hub, settings, groups=["spark"])

    assert outcome_of(report, BIG_FILE) is Status.DOWNLOADED
    assert big_destination(settings).read_bytes() == big.content
    assert not part.exists()
    assert [r.range for r in hub.gets(BIG_FILE) if "/cdn/" in r.path] == ["bytes=700000-"]


def test_server_that_ignores_range_restarts_the_file(hub: FakeHub, settings: Settings) -> None:
    big = hub.lookup(SPARK_REPO, BIG_FILE)
    big.ignore_range = True
    part = part_path(big_destination(settings))
    part.parent.mkdir(parents=True)
    part.write_bytes(big.content[:500_000])

    report = sync_with(hub, settings, groups=["spark"])

    assert report.exit_code == 0
    assert big_destination(settings).read_bytes() == big.content


def test_dry_run_reports_where_a_transfer_would_resume(hub: FakeHub, settings: Settings) -> None:
    big = hub.lookup(SPARK_REPO, BIG_FILE)
    part = part_path(big_destination(settings))
    part.parent.mkdir(parents=True)
    part.write_bytes(big.content[:1024])

    report = sync_with(hub, settings, groups=["spark"], dry_run=True)

    (outcome,) = [o for o in report.outcomes if o.remote.label.endswith(BIG_FILE)]
    assert outcome.status is Status.PLANNED and outcome.detail == "resume at 1.0 KiB"
    assert outcome.size == len(big.content)
    assert all_files_under(settings.spark_model_dir) == [part]


# --- verification ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ({"advertised_size": 2_500_010}, "size mismatch"),
        ({"advertised_size": 2_000_000}, "size mismatch"),
        ({"advertised_sha256": "ab" * 32}, "sha256 mismatch"),
    ],
    ids=["short", "long", "sha256"],
)
def test_mismatch_is_detected_and_nothing_is_kept(
    hub: FakeHub, settings: Settings, fault: dict[str, object], message: str
) -> None:
    big = hub.lookup(SPARK_REPO, BIG_FILE)
    for name, value in fault.items():
        setattr(big, name, value)

    report = sync_with(hub, settings, groups=["spark"])

    (failed,) = report.failed
    assert failed.remote.path == BIG_FILE and message in failed.detail
    assert report.exit_code == 1
    assert not big_destination(settings).exists()
    assert not part_path(big_destination(settings)).exists()
    assert outcome_of(report, "BiCodec/model.safetensors") is Status.DOWNLOADED  # the others still came


def test_cli_exits_1_when_a_file_fails_verification(hub: FakeHub, run_tool: RunTool) -> None:
    hub.lookup(RVC_BASE_REPO, "rmvpe.pt").advertised_sha256 = "cd" * 32
    result = run_tool("download_all_assets", "--only", "rmvpe,hubert", "--quiet", HF_ENDPOINT=hub.url)
    assert result.returncode == 1
    assert "sha256 mismatch" in result.stdout and "sha256 mismatch" in result.stderr


def test_local_file_of_the_wrong_size_is_fetched_again(hub: FakeHub, settings: Settings) -> None:
    settings.hubert_path.parent.mkdir(parents=True)
    settings.hubert_path.write_bytes(b"truncated")
    report = sync_with(hub, settings, groups=["hubert"])
    assert outcome_of(report, "hubert_base.pt") is Status.DOWNLOADED
    assert settings.hubert_path.read_bytes() == hub.lookup(RVC_BASE_REPO, "hubert_base.pt").content


def test_verify_catches_a_same_size_corrupt_file(hub: FakeHub, settings: Settings) -> None:
    good = hub.lookup(RVC_BASE_REPO, "rmvpe.pt").content
    settings.rmvpe_path.parent.mkdir(parents=True)
    settings.rmvpe_path.write_bytes(bytes(len(good)))

    assert outcome_of(sync_with(hub, settings, groups=["rmvpe"]), "rmvpe.pt") is Status.PRESENT
    assert outcome_of(sync_with(hub, settings, groups=["rmvpe"], verify=True), "rmvpe.pt") is Status.DOWNLOADED
    assert settings.rmvpe_path.read_bytes() == good


# --- what gets fetched ----------------------------------------------------------------------------------


def test_builtin_layout_is_used_when_the_listing_api_is_missing(hub: FakeHub, settings: Settings) -> None:
    hub.listing = False
    report = sync_with(hub, settings, groups=["spark"])
    fetched = {o.remote.path for o in report.outcomes}
    assert fetched == set(SPARK_REQUIRED_FILES) | set(SPARK_OPTIONAL_FILES)
    assert report.exit_code == 0
    assert outcome_of(report, "LLM/generation_config.json") is Status.SKIPPED  # optional, absent upstream
    assert outcome_of(report, "Spark-TTS-0.5B/README.md") is Status.DOWNLOADED


def test_listing_pages_are_followed(hub: FakeHub, settings: Settings) -> None:
    hub.page_size = 3
    with HubClient(hub.url) as client:
        listed = client.list_files(SPARK_REPO)
        planned = {f.path for f in plan_files(client, settings, groups=["spark"])}
    assert sorted(listed) == sorted(spark_tree())
    assert planned == {p for p in spark_tree() if not p.startswith(("src/", ".git"))}


def test_missing_required_file_fails_but_the_rest_is_fetched(hub: FakeHub, settings: Settings) -> None:
    del hub.repos[SPARK_REPO]["LLM/merges.txt"]
    report = sync_with(hub, settings, groups=["spark"])
    (failed,) = report.failed
    assert failed.remote.path == "LLM/merges.txt" and "404" in failed.detail
    assert (settings.spark_model_dir / "config.yaml").is_file()


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("a/b:x.pth", VoiceSource("a/b", "x.pth")),
        ("a/b@v2:dir/x.pth,dir/added_x.index", VoiceSource("a/b", "dir/x.pth", "dir/added_x.index", "v2")),
    ],
)
def test_voice_specs_parse(spec: str, expected: VoiceSource) -> None:
    assert parse_voice_spec(spec) == expected


@pytest.mark.parametrize("spec", ["a/b", "ab:x.pth", "a/b:x.bin", "a/b:x.pth,y.faiss", "a/b/c:x.pth"])
def test_bad_voice_specs_are_refused(spec: str) -> None:
    with pytest.raises(InvalidInput, match="voice"):
        parse_voice_spec(spec)


def test_cli_refuses_a_bad_voice_with_exit_code_2(run_tool: RunTool) -> None:
    result = run_tool("download_all_assets", "--voice", "nonsense", HF_ENDPOINT="http://127.0.0.1:9")
    assert result.returncode == 2 and "REPO:FILE.pth" in result.stderr


# --- unreachable hub ------------------------------------------------------------------------------------


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """A port that accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


def test_if_reachable_exits_3_quietly_when_nothing_listens(run_tool: RunTool, settings: Settings) -> None:
    result = run_tool("download_all_assets", "--if-reachable", timeout=30,
                      HF_ENDPOINT=f"http://127.0.0.1:{free_port()}")
    assert result.returncode == 3
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and "not reachable" in result.stderr
    assert not settings.weights_dir.parent.exists()


def test_if_reachable_gives_up_on_a_silent_hub_after_the_probe_timeout(
    run_tool: RunTool, silent_endpoint: str
) -> None:
    # the subprocess timeout bounds the wait: a missing probe timeout would hang until the 30 s kill
    result = run_tool("download_all_assets", "--if-reachable", "--probe-timeout", "0.5", timeout=30,
                      HF_ENDPOINT=silent_endpoint)
    assert result.returncode == 3 and "Traceback" not in result.stderr


def test_unreachable_without_if_reachable_explains_itself(run_tool: RunTool) -> None:
    result = run_tool("download_all_assets", timeout=30, HF_ENDPOINT=f"http://127.0.0.1:{free_port()}")
    assert result.returncode == 3
    assert "HF_ENDPOINT" in result.stderr and "Traceback" not in result.stderr


# --- progress bar ---------------------------------------------------------------------------------------


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_redraws_in_place_on_a_terminal() -> None:
    stream = _Terminal()
    bar = ProgressBar("LLM/model.safetensors", 2048, initial=1024, stream=stream, min_interval_s=0)
    bar.update(1024)
    bar.close()
    text = stream.getvalue()
    assert text.count("\r") == 3 and text.endswith("\n")
    assert "[" + "#" * 30 + "] 100% 2.0 KiB/2.0 KiB" in text


def test_progress_bar_writes_two_lines_into_a_log() -> None:
    stream = io.StringIO()
    bar = ProgressBar("rmvpe.pt", 5 * 1024 * 1024, stream=stream)
    for _ in range(5):
        bar.update(1024 * 1024)
    bar.close()
    lines = stream.getvalue().splitlines()
    assert lines[0] == "rmvpe.pt: downloading 5.0 MiB" and lines[1].startswith("rmvpe.pt: done, 5.0 MiB")
    assert len(lines) == 2


def test_format_bytes() -> None:
    assert [format_bytes(n) for n in (0, 1023, 1536, 3 * 1024**3)] == ["0 B", "1023 B", "1.5 KiB", "3.0 GiB"]
