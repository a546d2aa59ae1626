"""The compose `backup` service's health check: a base backup of the history being streamed now,
and no error from the receiver. After a restore the service starts a new history, and until its
base backup is taken the archive cannot restore the new timeline, so it is not healthy yet.

    python -m backups.continuous.healthcheck /backups

Plain Python, no Django: compose runs it every 10 s.
"""

import sys
from pathlib import Path

from backups.continuous.archive import Archive


def healthy(archive: Archive) -> bool:
    chain = archive.current_chain()
    if chain is None or archive.error_file.exists():
        return False
    return archive.newest_base_backup(chain) is not None


if __name__ == "__main__":
    sys.exit(0 if healthy(Archive(Path(sys.argv[1]))) else 1)
