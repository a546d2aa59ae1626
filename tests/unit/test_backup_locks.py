"""The locks that keep two processes off one archive or one data folder (flock locks belong to
an open file, so a second open in this process stands for a second process)."""

from backups.continuous.archive import Archive
from backups.continuous.configured_server import ConfiguredServer
from backups.continuous.mounted_data_folder import MountedDataFolder
from backups.continuous.protection import Protection
from core.files import locked_file


def test_a_second_protection_of_one_archive_leaves_it_to_the_first(tmp_path):
    archive = Archive(tmp_path / "backups")
    archive.make_folders()
    # The server is never reached: the lock is tried first.
    unreachable = ConfiguredServer({"HOST": str(tmp_path / "nowhere")}, pgdata=tmp_path)
    protection = Protection(
        server=unreachable, archive=archive, base_every=3600, keep_days=7, warn=print
    )
    with locked_file(archive.folder / "protection.lock"):  # the first protecting process
        assert protection.claim() is False


def test_a_restore_into_a_mounted_folder_holds_its_lock(tmp_path):
    folder = MountedDataFolder(tmp_path / "pgdata", settings_dict={})
    with folder.start_lock():
        assert locked_file(tmp_path / "keepnotes-restore.lock", wait=False) is None
    released = locked_file(tmp_path / "keepnotes-restore.lock", wait=False)
    assert released is not None
    released.close()
