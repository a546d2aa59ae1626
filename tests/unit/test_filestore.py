"""The protected store called directly: content-addressed, stored once, archived before it
returns, refusals that leave nothing behind, the orphan sweep, and the start-up check."""

import hashlib
import io
import os
import subprocess
import time

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from core import env
from filestore.checks import problems
from filestore.errors import FileStoreError, FileTooLarge, StorageFull
from filestore.selectors import file_local_path
from filestore.services import file_open, file_remove_orphans, file_store

pytestmark = pytest.mark.django_db


@pytest.fixture
def store(tmp_path):
    """A store and an archive of the test's own."""
    files, archive = tmp_path / "files", tmp_path / "backups" / "files"
    storages = {
        "protected": {
            "BACKEND": "filestore.storage.ProtectedFileSystemStorage",
            "OPTIONS": {"location": str(files)},
        }
    }
    with override_settings(
        STORAGES=storages, PROTECTED_FILES_DIR=files, PROTECTED_FILES_ARCHIVE_DIR=archive
    ):
        yield files, archive


def every_file(folder) -> list[str]:
    return sorted(
        str(path.relative_to(folder))
        for path in folder.rglob("*")
        if path.is_file() and path.name != ".lock"
    )


class Trickle(io.RawIOBase):
    """A body that arrives in small reads, as a socket gives it."""

    def __init__(self, data: bytes):
        self.data, self.reads = io.BytesIO(data), 0

    def read(self, size=-1):
        self.reads += 1
        return self.data.read(min(size, 4096) if size and size > 0 else 4096)


def test_a_file_is_stored_under_its_sha256_and_archived_before_the_call_returns(store):
    files, archive = store
    body = os.urandom(300_000)
    stored = file_store(stream=Trickle(body), max_bytes=1_000_000)
    digest = hashlib.sha256(body).hexdigest()
    assert stored.sha256 == digest and stored.size == len(body)
    assert stored.name == f"{digest[:2]}/{digest}"
    assert file_local_path(stored.name) == files / stored.name
    assert (files / stored.name).read_bytes() == body
    assert (archive / stored.name).read_bytes() == body
    with file_open(stored.name) as opened:
        assert opened.read() == body
    assert every_file(files) == [stored.name]  # no upload leftovers


def test_the_same_bytes_are_stored_once(store):
    files, archive = store
    first = file_store(stream=io.BytesIO(b"same"), max_bytes=10)
    second = file_store(stream=io.BytesIO(b"same"), max_bytes=10)
    assert first == second
    assert every_file(files) == [first.name] and every_file(archive) == [first.name]


def test_a_file_over_the_limit_is_refused_and_leaves_nothing(store):
    files, archive = store
    with pytest.raises(FileTooLarge) as refused:
        file_store(stream=io.BytesIO(b"x" * 101), max_bytes=100)
    assert isinstance(refused.value, FileStoreError) and "100 bytes" in str(refused.value)
    assert every_file(files) == [] and every_file(archive) == []
    assert file_store(stream=io.BytesIO(b"x" * 100), max_bytes=100).size == 100


def test_a_full_disk_is_storage_full_and_leaves_nothing(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a size-limited tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        storages = {
            "protected": {
                "BACKEND": "filestore.storage.ProtectedFileSystemStorage",
                "OPTIONS": {"location": str(disk / "files")},
            }
        }
        with override_settings(STORAGES=storages, PROTECTED_FILES_ARCHIVE_DIR=tmp_path / "a"):
            with pytest.raises(StorageFull):
                file_store(stream=io.BytesIO(os.urandom(2 * 2**20)), max_bytes=10 * 2**20)
            assert every_file(disk) == []
    finally:
        subprocess.run(["umount", "--lazy", str(disk)], check=False)


def test_names_that_are_not_a_stored_files_are_refused(store):
    for name in ("../etc/passwd", "ab/cd", "/etc/passwd", "zz/" + "z" * 64):
        with pytest.raises(ValueError):
            file_local_path(name)


def test_the_sweep_removes_old_files_no_row_names_and_keeps_their_archive_copy(store):
    files, archive = store
    old = file_store(stream=io.BytesIO(b"interrupted upload"), max_bytes=100)
    leftover = files / ".incoming" / "upload-cut.partial"
    leftover.write_bytes(b"half a bo")
    an_hour_ago = time.time() - 3600
    for path in (files / old.name, leftover):
        os.utime(path, (an_hour_ago, an_hour_ago))
    fresh = file_store(stream=io.BytesIO(b"its row is being written"), max_bytes=100)

    assert file_remove_orphans(grace_seconds=600) == [old.name]
    assert every_file(files) == [fresh.name]
    assert sorted(every_file(archive)) == sorted([old.name, fresh.name])


def test_storing_again_renews_a_file_the_sweep_would_otherwise_take(store):
    files, _ = store
    stored = file_store(stream=io.BytesIO(b"deleted, then uploaded again"), max_bytes=100)
    an_hour_ago = time.time() - 3600
    os.utime(files / stored.name, (an_hour_ago, an_hour_ago))
    file_store(stream=io.BytesIO(b"deleted, then uploaded again"), max_bytes=100)
    assert file_remove_orphans(grace_seconds=600) == []
    assert (files / stored.name).exists()


def test_the_start_up_check_names_a_store_that_cannot_be_written(store, tmp_path):
    assert problems() == []
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    storages = {
        "protected": {
            "BACKEND": "filestore.storage.ProtectedFileSystemStorage",
            "OPTIONS": {"location": str(blocker / "files")},
        }
    }
    with override_settings(STORAGES=storages, PROTECTED_FILES_DIR=blocker / "files"):
        found = problems()
    assert found and all("PROTECTED_FILES_DIR" in problem for problem in found)


def test_files_url_is_a_bucket_and_an_optional_prefix():
    assert env.parse_s3_url("FILES_URL", "s3://media") == ("media", "")
    assert env.parse_s3_url("FILES_URL", "s3://media/app/files/") == ("media", "app/files")
    with pytest.raises(ImproperlyConfigured, match="FILES_URL"):
        env.parse_s3_url("FILES_URL", "https://media")
