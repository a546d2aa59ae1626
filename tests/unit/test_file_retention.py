"""The archive's copies of protected files: kept while a restorable point can name them, then
pruned; and the count of those not copied off-site yet (status, /readyz, metrics)."""

import hashlib
from datetime import UTC, datetime, timedelta

from backups.continuous.files import SHIPPED, mark_and_prune, offsite_waiting
from filestore.archive import FileArchive


def archived(archive: FileArchive, tmp_path, content: bytes) -> str:
    digest = hashlib.sha256(content).hexdigest()
    source = tmp_path / digest
    source.write_bytes(content)
    name = f"{digest[:2]}/{digest}"
    archive.put(source=source, name=name)
    return name


def test_a_copy_no_row_names_stays_until_no_restorable_point_can_name_it(tmp_path):
    archive = FileArchive(tmp_path / "files")
    named, deleted = archived(archive, tmp_path, b"named"), archived(archive, tmp_path, b"gone")
    now = datetime.now(UTC)

    # The oldest restorable point is before it was last seen named: a restore may want it.
    assert mark_and_prune(archive, in_use={named}, oldest_point=now - timedelta(days=7)) == []
    assert archive.intact(deleted) and archive.unnamed_since(deleted) is not None
    assert archive.unnamed_since(named) is None
    # Nothing restorable (no base backup): nothing is deleted, however old.
    assert mark_and_prune(archive, in_use={named}, oldest_point=None) == []
    # Once the oldest restorable point is after it was first found unnamed, it goes.
    later = now + timedelta(days=8)
    assert mark_and_prune(archive, in_use={named}, oldest_point=later) == [deleted]
    assert not archive.has(deleted) and archive.intact(named)


def test_a_file_named_again_is_kept_and_its_mark_cleared(tmp_path):
    archive = FileArchive(tmp_path / "files")
    name = archived(archive, tmp_path, b"deleted, then restored or uploaded again")
    mark_and_prune(archive, in_use=set(), oldest_point=None)
    assert archive.unnamed_since(name) is not None
    # Named again (a restore to before the delete): the mark goes, the copy stays.
    later = datetime.now(UTC) + timedelta(days=30)
    assert mark_and_prune(archive, in_use={name}, oldest_point=later) == []
    assert archive.unnamed_since(name) is None and archive.intact(name)
    # Uploaded again (file_store archives it): the mark goes as well.
    mark_and_prune(archive, in_use=set(), oldest_point=None)
    archived(archive, tmp_path, b"deleted, then restored or uploaded again")
    assert archive.unnamed_since(name) is None


def test_files_waiting_to_go_off_site_are_counted_once_anything_is_sent(tmp_path):
    archive = FileArchive(tmp_path / "files")
    first = archived(archive, tmp_path, b"first")
    assert offsite_waiting(archive) is None, "nothing is sent off-site"
    (archive.folder / SHIPPED).write_text(first + "\n")
    assert offsite_waiting(archive) == 0
    archived(archive, tmp_path, b"second")
    assert offsite_waiting(archive) == 1
