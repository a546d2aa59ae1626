"""The local data folder is its owner's alone, and old pg_hba.conf files lose `trust`."""

import os
import stat

import pytest

from core import env
from pgembedded.access import _without_trust

# What initdb --auth-local=trust --auth-host=scram-sha-256 wrote for versions before this one.
OLD_HBA = """\
# "local" is for Unix domain socket connections only; trust lets anyone in
local   all             all                                     trust
# IPv4 local connections:
host    all             all             127.0.0.1/32            scram-sha-256
host    all             all             ::1/128                 scram-sha-256
local   replication     all                                     trust   # no password
host    replication     all             127.0.0.1/32            scram-sha-256
"""


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_data_folder_the_secret_key_creates_is_private(tmp_path):
    data_dir = tmp_path / "new" / "data"
    env.local_secret_key(data_dir)
    assert mode(data_dir) == 0o700
    assert mode(data_dir / "secret_key") == 0o600


def test_an_open_data_folder_of_ours_is_tightened_and_passing_through_is_kept(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    assert mode(env.private_folder(folder)) == 0o700
    folder.chmod(0o701)  # PostgreSQL run as `nobody` needs to pass through
    assert mode(env.private_folder(folder)) == 0o701


@pytest.mark.skipif(os.geteuid() != 0, reason="needs a folder owned by someone else")
def test_someone_elses_folder_is_left_as_it_is(tmp_path):
    folder = tmp_path / "theirs"
    folder.mkdir()
    folder.chmod(0o755)
    os.chown(folder, 65534, 65534)
    assert mode(env.private_folder(folder)) == 0o755


def test_trust_becomes_scram_on_rules_only():
    new = _without_trust(OLD_HBA)
    rules = [line.split("#")[0].split() for line in new.splitlines() if line[:1] != "#"]
    assert [rule[-1] for rule in rules] == ["scram-sha-256"] * 5
    assert "trust lets anyone in" in new and "# no password" in new, "comments are kept"
    assert _without_trust(new) == new
