"""The protected store on S3 (FILES_URL), through django-storages, against a real SeaweedFS:
the same contract as the local folder, and a start-up check that names an unreachable bucket."""

import hashlib
import io
import os
import time

import pytest
from django.test import override_settings

from backups.continuous.files import FilesRestore
from backups.errors import BackupError
from filestore.archive import FileArchive
from filestore.checks import problems
from filestore.selectors import file_local_path
from filestore.services import file_open, file_remove_orphans, file_store
from filestore.storage import protected_storage
from tests.support.seaweedfs import ACCESS_KEY, SECRET_KEY, running_store

pytestmark = pytest.mark.django_db
BUCKET = "keepnotes-files"


@pytest.fixture(scope="module")
def seaweedfs(tmp_path_factory):
    with running_store(tmp_path_factory.mktemp("seaweedfs"), BUCKET) as store:
        yield store


@pytest.fixture
def bucket(seaweedfs, tmp_path):
    options = {
        "bucket_name": BUCKET,
        "location": "media",
        "endpoint_url": seaweedfs.endpoint,
        "region_name": "us-east-1",
        "access_key": ACCESS_KEY,
        "secret_key": SECRET_KEY,
    }
    storages = {
        "protected": {"BACKEND": "filestore.storage.ProtectedS3Storage", "OPTIONS": options}
    }
    with override_settings(
        STORAGES=storages, PROTECTED_FILES_DIR=tmp_path / "files", PROTECTED_FILES_ARCHIVE_DIR=None
    ):
        yield seaweedfs


def test_a_file_is_stored_once_under_its_sha256_in_the_bucket(bucket, tmp_path):
    body = os.urandom(200_000)
    digest = hashlib.sha256(body).hexdigest()
    stored = file_store(stream=io.BytesIO(body), max_bytes=1_000_000)
    again = file_store(stream=io.BytesIO(body), max_bytes=1_000_000)
    assert stored == again and stored.name == f"{digest[:2]}/{digest}"
    assert f"media/{stored.name}" in bucket.keys(BUCKET)
    assert file_local_path(stored.name) is None  # downloads do not go through the front's disk
    with file_open(stored.name) as opened:
        assert opened.read() == body
    assert list((tmp_path / "files" / ".incoming").glob("upload-*")) == [], "nothing staged left"
    assert problems() == []


def test_the_sweep_removes_unnamed_objects_past_the_grace(bucket):
    stored = file_store(stream=io.BytesIO(b"never named"), max_bytes=100)
    assert file_remove_orphans(grace_seconds=3600) == []
    assert stored.name in file_remove_orphans(grace_seconds=0, now=time.time() + 5)
    assert not protected_storage().exists(stored.name)


def test_an_unreachable_bucket_stops_the_start(bucket):
    storages = {
        "protected": {
            "BACKEND": "filestore.storage.ProtectedS3Storage",
            "OPTIONS": {
                "bucket_name": "no-such-bucket",
                "endpoint_url": bucket.endpoint,
                "region_name": "us-east-1",
                "access_key": ACCESS_KEY,
                "secret_key": SECRET_KEY,
            },
        }
    }
    with override_settings(STORAGES=storages):
        [problem] = problems()
    assert "no-such-bucket" in problem and "FILES_URL" in problem


def test_a_restore_on_s3_finds_the_rows_files_in_the_bucket_and_names_a_missing_one(
    bucket, tmp_path
):
    stored = file_store(stream=io.BytesIO(b"named by a restored row"), max_bytes=100)
    files = FilesRestore(archive=FileArchive(tmp_path / "no-archive"))
    files.check_names({stored.name})
    assert files.found == {stored.name: None}, "already in the bucket: nothing to copy"
    missing = "ab/ab" + "0" * 62
    with pytest.raises(BackupError, match="missing or damaged") as refused:
        files.check_names({stored.name, missing})
    assert missing in str(refused.value) and "Nothing was changed" in str(refused.value)
