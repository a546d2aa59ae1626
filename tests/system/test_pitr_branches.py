"""Restores branch the history; every branch keeps its own timeline, off-site included.

Against a real store (SeaweedFS): three restores in a row (`--to` an earlier point, `--latest`,
then `--to` a point of the first branch, just before the second was served). After each,
`serve` writes on and ships: no refusal, and no object of an earlier branch changes. Then the
disk is lost, and the bucket alone gives back every acknowledged note of the branch served last.
"""

import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from barman import xlog

from tests.support.pitr import Writers, lose_folder, stored_titles
from tests.support.processes import Server, manage, wait_until
from tests.support.seaweedfs import SeaweedFS, running_store

BUCKET = "keepnotes-branches"
WRITE_SECONDS = 1.0


@pytest.fixture
def store(tmp_path):
    with running_store(tmp_path / "seaweedfs", BUCKET) as store:
        yield store


def newest_chain(data_dir: Path) -> Path:
    return sorted((data_dir / "backups" / "wal").iterdir())[-1]


def chain_timeline(data_dir: Path) -> int:
    chain = newest_chain(data_dir).name
    for info in (data_dir / "backups" / "base").glob("*.json"):
        data = json.loads(info.read_text())
        if data["chain"] == chain:
            return data["timeline"]
    raise AssertionError(f"no base backup starts chain {chain}")


def shipped(data_dir: Path) -> bool:
    """The newest chain's off-site base backup taken, every complete segment shipped, no error."""
    if not list((data_dir / "backups" / "wal").glob("*/OFFSITE_BASE")):
        return False  # not even the first branch's off-site base backup yet
    chain = newest_chain(data_dir)
    error = data_dir / "backups" / "last_error.txt"
    assert not error.exists() or "Nothing is sent" not in error.read_text(), error.read_text()
    complete = {path.name for path in chain.iterdir() if xlog.is_wal_file(path.name)}
    listed = (chain / "SHIPPED").read_text().split() if (chain / "SHIPPED").exists() else []
    return (chain / "OFFSITE_BASE").exists() and complete <= set(listed) and not error.exists()


def ship_and_stop(server: Server, data_dir: Path) -> None:
    wait_until(lambda: shipped(data_dir), "the branch shipped off-site")
    time.sleep(2.5)  # the segment being written goes every BACKUP_OFFSITE_SECONDS
    assert server.stop() == 0


def serve_and_write(data_dir: Path, environ: dict, servers: list, prefix: str) -> Writers:
    server = Server(data_dir, shipped=True, **environ)
    servers.append(server)
    writers = Writers(server, server.token(), count=2, prefix=prefix)
    time.sleep(WRITE_SECONDS)
    writers.stop()
    assert writers.acked()
    ship_and_stop(server, data_dir)
    return writers


def restore(data_dir: Path, environ: dict, *args: str) -> str:
    done = manage(data_dir, "restore", *args, "--force", **environ)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def kept(before: dict[str, str], store: SeaweedFS) -> None:
    now = store.objects(BUCKET)
    changed = [key for key, etag in before.items() if now.get(key) != etag]
    assert changed == [], "objects of earlier branches changed"


def iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat()


def test_three_restores_in_a_row_each_branch_on_its_own_timeline_off_site(tmp_path, store, servers):
    data_dir = tmp_path / "data"
    environ = {
        "BACKUP_DIR": "",
        "BACKUP_URL": f"s3://{BUCKET}/app",
        "BACKUP_OFFSITE_SECONDS": "1",
        "TASK_WORKERS": "0",
        **store.secrets(tmp_path / "secrets"),
    }
    server = Server(data_dir, shipped=True, **environ)
    servers.append(server)
    first = Writers(server, server.token(), count=2, prefix="one ")
    time.sleep(WRITE_SECONDS)
    early = time.time()
    time.sleep(WRITE_SECONDS)
    late = time.time()  # on the first branch, moments before the second is served
    time.sleep(0.3)
    first.stop()
    ship_and_stop(server, data_dir)

    timelines = [chain_timeline(data_dir)]
    objects = store.objects(BUCKET)
    restore(data_dir, environ, "--to", iso(early))
    second = serve_and_write(data_dir, environ, servers, "two ")
    timelines.append(chain_timeline(data_dir))
    kept(objects, store)

    objects = store.objects(BUCKET)
    restore(data_dir, environ, "--latest")
    third = serve_and_write(data_dir, environ, servers, "three ")
    timelines.append(chain_timeline(data_dir))
    kept(objects, store)

    objects = store.objects(BUCKET)
    restore(data_dir, environ, "--to", iso(late))
    titles = stored_titles(data_dir)
    assert first.acked_before(late) <= set(titles), "the first branch as served at T"
    assert not set(titles) & (first.sent_after(late) | second.acked() | third.acked())
    fourth = serve_and_write(data_dir, environ, servers, "four ")
    timelines.append(chain_timeline(data_dir))
    kept(objects, store)
    assert timelines == [1, 2, 3, 4], "each restore a timeline above every one used"

    listed = manage(data_dir, "restore", "--list", **environ).stdout
    forks = re.findall(
        r"^timeline (\d+), .*?(?:forked from timeline (\d+)|first timeline)", listed, re.M
    )
    assert forks == [("1", ""), ("2", "1"), ("3", "2"), ("4", "1")], listed

    lose_folder(data_dir)  # data, local archive and all: the bucket alone
    restore(data_dir, environ, "--latest")
    titles = stored_titles(data_dir)
    live = first.acked_before(late) | fourth.acked()
    assert live - set(titles) == set(), "every acknowledged note of the live branch"
    assert not set(titles) & (second.acked() | third.acked())
    assert all(count == 1 for count in titles.values())
