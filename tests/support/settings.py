"""The production settings, with the test session's own throwaway data folder.

Unless DATABASE_URL points elsewhere, the suite runs against a real embedded PostgreSQL that
lives in that folder: started on first use, stopped and deleted when the session ends.
"""

import atexit
import os
import shutil
import tempfile

_data_dir = tempfile.mkdtemp(prefix="keepnotes-tests-")
atexit.register(shutil.rmtree, _data_dir, ignore_errors=True)  # runs after PostgreSQL stops
os.environ["DATA_DIR"] = _data_dir

from config.settings import *  # noqa: E402, F403

# Hashing at full strength makes every login in the suite slow without testing anything more.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
