"""Backup and restore times for a database of 100,000 notes, through the real commands.

    uv run python bench/backup_timing.py              # 100,000 notes
    uv run python bench/backup_timing.py --notes 1000000

Seeds a throwaway embedded data folder (one INSERT ... SELECT generate_series), then times, as
`manage.py` processes, so Django's start-up is included (docs/performance.md):

1. `backup` while nothing else runs;
2. `restore --force --no-backup-first` over the same data (drop and re-create everything);
3. the disaster path: `reset_data`, then `restore` into the empty folder (initdb included).

After each restore the notes are compared with the seeded ones (count and checksum). Results
are printed and written to bench/results/backup_timing.json.
"""

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script: the project's packages

from bench.processes import child_environment  # noqa: E402
from pgembedded.postgres import EmbeddedPostgres  # noqa: E402

SEED = """
INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, email,
                       is_staff, is_active, date_joined)
SELECT '!', false, 'user' || i, '', '', 'user' || i || '@example.com', false, true, now()
FROM generate_series(1, 100) AS i;

INSERT INTO notes_note (owner_id, title, body, tags, created, updated)
SELECT u.id,
       'Note ' || i || ' about ' || md5(i::text),
       'Meeting notes ' || i || E'.\n' || repeat('The quick brown fox jumps over the lazy dog; '
           || md5((i * 7)::text) || E'.\n', 1 + i % 12),
       ARRAY['tag' || (i % 17), 'project-' || (i % 5)],
       now() - i * interval '1 minute', now()
FROM generate_series(1, NOTES) AS i
JOIN auth_user u ON u.username = 'user' || (1 + i % 100);
"""
CHECKSUM = "SELECT count(*), md5(string_agg(n::text, '' ORDER BY n.id)) FROM notes_note n"


def manage(data_dir: Path, *args: str) -> tuple[float, str]:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env=child_environment(data_dir, WEB_CONCURRENCY="2", BACKUP_DIR="", BACKUP_KEEP=""),
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        sys.exit(f"manage.py {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return elapsed, result.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", type=int, default=100_000)
    parser.add_argument("--keep-data", action="store_true", help="leave the folder behind")
    options = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="keepnotes-bench-"))
    data_dir = workdir / "data"
    server = EmbeddedPostgres(data_dir)
    try:
        manage(data_dir, "migrate", "--noinput")
        server.ensure_running()
        with server.connect(autocommit=True) as connection:
            started = time.monotonic()
            connection.execute(SEED.replace("NOTES", str(int(options.notes))))
            seeded_in = time.monotonic() - started
            connection.execute("VACUUM ANALYZE")
            expected = connection.execute(CHECKSUM).fetchone()
            size = connection.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        print(f"Seeded {expected[0]} notes in {seeded_in:.1f} s; database {size / 1e6:.1f} MB")

        backup_s, output = manage(data_dir, "backup")
        print(output.strip())
        dump = Path(re.search(r"^Wrote (\S+) ", output, re.MULTILINE).group(1))

        replace_s, output = manage(data_dir, "restore", str(dump), "--force", "--no-backup-first")
        print(output.strip())
        with server.connect() as connection:
            assert connection.execute(CHECKSUM).fetchone() == expected, "restore lost data"

        server.leave()
        reset_s, _ = manage(data_dir, "reset_data", "--noinput", "--yes-delete-database")
        empty_s, output = manage(data_dir, "restore", str(dump))
        print(output.strip())
        server.ensure_running()
        with server.connect() as connection:
            assert connection.execute(CHECKSUM).fetchone() == expected, "restore lost data"
        server.leave()

        results = {
            "notes": expected[0],
            "database_mb": round(size / 1e6, 1),
            "dump_mb": round(dump.stat().st_size / 1e6, 1),
            "backup_s": round(backup_s, 2),
            "restore_over_data_s": round(replace_s, 2),
            "reset_data_s": round(reset_s, 2),
            "restore_into_empty_folder_s": round(empty_s, 2),
            "machine": f"{platform.system()} {platform.machine()}, "
            f"{len(os.sched_getaffinity(0))} CPUs, load {os.getloadavg()[0]:.1f}",
        }
        print(json.dumps(results, indent=2))
        out = REPO / "bench" / "results" / "backup_timing.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2) + "\n")
    finally:
        server.leave()
        server.stop()
        if options.keep_data:
            print(f"Data left in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
