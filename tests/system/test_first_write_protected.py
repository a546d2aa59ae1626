"""Protected from the first acknowledged write: on a first start, `serve` reports ready only once
the first base backup is taken, so a note acknowledged at once survives a power cut and the loss
of the data folder moments later. And an archive with WAL but no base backup says so.
"""

import shutil

from tests.support.pitr import lose_folder, power_cut, stored_titles
from tests.support.processes import Server, manage


def test_a_note_acknowledged_at_once_on_a_first_start_survives_a_lost_data_folder(
    tmp_path, servers
):
    data_dir = tmp_path / "data"
    server = Server(data_dir, shipped=True, BACKUP_DIR="", TASK_WORKERS="0")
    servers.append(server)
    assert "Protected: every write from now on can be restored" in server.log.read_text()
    status, _ = server.request("POST", "/api/v1/notes", {"title": "first"}, server.token())
    assert status == 201
    power_cut(server, data_dir)
    lose_folder(data_dir / "postgres")

    restored = manage(data_dir, "restore", "--latest", BACKUP_DIR="")
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert stored_titles(data_dir) == {"first": 1}

    # The control: the same archive without its base backup (as it was before the first one
    # ended) holds the note's WAL, and nothing to replay it onto; restore says exactly that.
    shutil.rmtree(data_dir / "postgres")
    shutil.rmtree(data_dir / "backups" / "base")
    for command in (["--latest"], ["--to", "2030-01-01T00:00:00Z"]):
        refused = manage(data_dir, "restore", *command, BACKUP_DIR="")
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert "holds WAL" in refused.stderr and "no base backup" in refused.stderr, refused.stderr
        assert refused.stderr.rstrip().endswith("Nothing was changed."), refused.stderr
        assert not (data_dir / "postgres").exists()
