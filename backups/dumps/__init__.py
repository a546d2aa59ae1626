"""Logical pg_dump files (`dump` and `load`, any server), as the compose stack makes them too.

The connection comes from Django's settings and reaches pg_dump, pg_restore and psql through
libpq's environment variables, so a password never appears on a command line. Safety, step by
step:

- pg_dump reads one snapshot, so a dump is consistent while the app keeps writing (`dump.py`);
- it writes `NAME.dump.partial`, which is fsynced and renamed only once complete, with its
  sha256 beside it (`NAME.dump.sha256`, the format `sha256sum -c` reads; `catalogue.py`);
- before a load touches the database the file is read to its end (`pg_restore` into
  /dev/null) and its checksum compared: a truncated or foreign file stops there (`validate.py`);
- the load replaces the archive's schemas as a whole in one transaction, committed only once
  the whole file went in: a failure halfway leaves the data that was there before (`load.py`).
"""
