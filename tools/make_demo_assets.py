"""Write demo assets (tiny random-weight models in the official layouts) where real ones are absent.

    python tools/make_demo_assets.py            # fill in what is missing
    python tools/make_demo_assets.py --force    # overwrite everything with demo assets

The service runs end to end on them, but the voice is NOISE: the start-up log,
/health and /status say "demo assets (random weights)" until the real models are
downloaded with tools/download_all_assets.py (which removes the demo markers).
Folders come from the settings: SPARK_MODEL_DIR, WEIGHTS_DIR (voice RVC_MODEL), ASSETS_DIR.

Exit codes: 0 done, 1 generation failed, 2 bad settings.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import sys
from pathlib import Path

if importlib.util.find_spec("rvc") is None:  # run from a checkout that is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import rvc  # noqa: E402, F401  (hides the repo's triton/ folder before torch is imported)
from rvc.assets import DEMO_NOTICE  # noqa: E402
from rvc.errors import VoiceError  # noqa: E402
from rvc.logging_setup import configure_logging  # noqa: E402
from rvc.provision.demo import make_demo_assets  # noqa: E402
from rvc.settings import load_settings  # noqa: E402

logger = logging.getLogger("make_demo_assets")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--force", action="store_true", help="overwrite existing files, real ones included")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the generated weights (default 0)")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except VoiceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)  # CPU-feature probing, not news
    try:
        result = make_demo_assets(settings, force=args.force, seed=args.seed)
    except ImportError as exc:
        logger.error("the demo generators are not available (%s)", exc)
        return 1
    except (VoiceError, OSError, ValueError) as exc:
        logger.error("demo asset generation failed: %s", exc)
        return 1
    for path in result.written:
        print(f"wrote {path}")
    for path in result.kept:
        print(f"kept  {path} (present; --force to overwrite)")
    if result.marked:
        print(f"\nWARNING: {DEMO_NOTICE}")
    else:
        print("nothing to do: every asset is present")
    return 0


if __name__ == "__main__":
    sys.exit(main())
