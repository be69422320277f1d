"""``python -m rvc.storage upgrade|current|revision -m MESSAGE``: the migrations without alembic.ini.

``upgrade`` and ``current`` act on DATABASE_URL (else SQLite in STATE_DIR),
e.g. from a Kubernetes init container before the gateways start; ``revision``
writes a new, empty migration file into the package.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from alembic import command
from alembic.config import Config

from rvc.errors import VoiceError
from rvc.settings import load_settings
from rvc.storage.database import MIGRATIONS, Database, database_url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rvc.storage", description=__doc__)
    parser.add_argument("action", choices=("upgrade", "current", "revision"))
    parser.add_argument("-m", "--message", default="", help="revision: what the migration does")
    args = parser.parse_args(argv)
    if args.action == "revision":
        if not args.message:
            parser.error("revision needs -m MESSAGE")
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        head = Database.head_revision()
        next_id = f"{int(head or '0') + 1:04d}"
        slug = "_".join(args.message.lower().split())
        command.revision(config, message=args.message, rev_id=next_id, version_path=str(MIGRATIONS / "versions"))
        print(f"wrote {Path(MIGRATIONS / 'versions')}/{next_id}_{slug}.py")
        return 0
    try:
        database = Database(database_url(os.environ.get("DATABASE_URL"), state_dir=load_settings().state_dir))
        revision = database.migrate() if args.action == "upgrade" else database.current_revision()
    except VoiceError as exc:
        print(exc.message, file=sys.stderr)
        return 1
    print(f"{database.describe()}: {revision or 'empty (no migration applied)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
