"""Download the service's model assets from the Hugging Face hub into the configured folders.

    python tools/download_all_assets.py                       # Spark-TTS-0.5B, hubert_base.pt, rmvpe.pt
    python tools/download_all_assets.py --voice owner/repo:Voice.pth,Voice_v2.index
    python tools/download_all_assets.py --only hubert,rmvpe --dry-run
    HF_ENDPOINT=https://hf-mirror.com python tools/download_all_assets.py

Files go where the settings say (SPARK_MODEL_DIR, ASSETS_DIR/hubert, ASSETS_DIR/rmvpe,
WEIGHTS_DIR). Transfers resume from `<file>.part`; complete files (same size as on the
hub) are skipped; sizes and, where the hub publishes one, sha256 are verified before a
file is moved into place. HF_TOKEN is sent for gated or private repositories. A folder
that held generated demo assets loses its demo marker once its real files are complete.
There is no default source for RVC voices: name them with --voice.

Exit codes: 0 all present, 1 a file failed, 2 bad arguments or settings,
3 hub unreachable (quietly, with --if-reachable), 130 interrupted (run again to resume).
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import sys
from pathlib import Path

if importlib.util.find_spec("rvc") is None:  # run from a checkout that is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rvc.errors import VoiceError  # noqa: E402
from rvc.logging_setup import configure_logging  # noqa: E402
from rvc.provision.catalog import ASSET_GROUPS, parse_voice_spec  # noqa: E402
from rvc.provision.demo import clear_demo_markers, retire_demo_spark_config  # noqa: E402
from rvc.provision.hub import HubClient, HubUnreachable  # noqa: E402
from rvc.provision.progress import ProgressBar  # noqa: E402
from rvc.provision.sync import (  # noqa: E402
    EXIT_INTERRUPTED,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    plan_files,
    sync_files,
)
from rvc.settings import load_settings  # noqa: E402

logger = logging.getLogger("download_all_assets")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--voice", action="append", default=[], metavar="REPO[@REV]:FILE.pth[,FILE.index]",
                        help="an RVC voice to fetch into WEIGHTS_DIR (repeatable)")
    parser.add_argument("--only", default=",".join(ASSET_GROUPS),
                        help=f"comma-separated groups to fetch (default: all of {','.join(ASSET_GROUPS)})")
    parser.add_argument("--dry-run", action="store_true", help="show what would be fetched; write nothing")
    parser.add_argument("--if-reachable", action="store_true",
                        help="try the hub with a short timeout; exit 3 quietly when it cannot be reached")
    parser.add_argument("--verify", action="store_true", help="also check the sha256 of files already present")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--retries", type=int, default=3, help="retries per file after a dropped transfer")
    parser.add_argument("--connect-timeout", type=float, default=10.0, help="seconds (default 10)")
    parser.add_argument("--probe-timeout", type=float, default=3.0,
                        help="seconds to wait for the hub's first answer with --if-reachable (default 3)")
    args = parser.parse_args(argv)
    args.groups = [group.strip() for group in args.only.split(",") if group.strip()]
    unknown = sorted(set(args.groups) - set(ASSET_GROUPS))
    if unknown:
        parser.error(f"--only: unknown group(s) {', '.join(unknown)}; choose from {', '.join(ASSET_GROUPS)}")
    if args.retries < 0 or args.connect_timeout <= 0 or args.probe_timeout <= 0:
        parser.error("--retries must be >= 0 and the timeouts positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = load_settings()
        voices = [parse_voice_spec(spec) for spec in args.voice]
    except VoiceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    configure_logging(settings.log_level)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request otherwise
    logging.getLogger("httpcore").setLevel(logging.WARNING)

    def progress(label: str, total: int | None, initial: int) -> ProgressBar:
        return ProgressBar(label, total, initial=initial, enabled=not args.quiet)

    hub = HubClient.from_environment(connect_timeout_s=args.connect_timeout, retries=args.retries)
    try:
        hub.probe(args.probe_timeout if args.if_reachable else args.connect_timeout)
        files = plan_files(hub, settings, groups=args.groups, voices=voices)
        if not args.dry_run and "spark" in args.groups:
            retire_demo_spark_config(settings)
        report = sync_files(hub, files, dry_run=args.dry_run, verify_existing=args.verify, progress=progress)
        if not args.dry_run:
            clear_demo_markers(report, settings)
    except HubUnreachable as exc:
        if args.if_reachable:
            logger.info("%s; nothing downloaded", exc.message)
        else:
            logger.error("%s; check the network or set HF_ENDPOINT to a reachable mirror", exc.message)
        return EXIT_UNREACHABLE
    except KeyboardInterrupt:
        print("\ninterrupted; run the same command again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        hub.close()
    print(report.table())
    if args.dry_run:
        print("dry run: nothing was written")
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())
