"""Continuous protection with point-in-time restore, and portable pg_dump files.

Continuous (docs/data-safety.md): `manage.py protect` streams the WAL with pg_receivewal into
the archive and takes base backups with pg_basebackup (checked with pg_verifybackup), and with
BACKUP_URL sends both off-site with barman-cloud. `serve` starts it for the embedded database;
the compose `backup` service runs it against the `db` service (a configured server).
`restore --to TIME` / `--latest` replay them in a scratch folder, which replaces the data folder
only once it worked: the embedded one, or the compose db volume's (the `restore` service).

Logical (`dump` and `load`, any server):

One implementation for every runtime: `manage.py dump` and `load FILE` locally,
and in the compose stack's services, from the app image. The connection comes
from Django's settings and reaches pg_dump, pg_restore and psql through libpq's environment
variables, so a password never appears on a command line. Safety, step by step:

- pg_dump reads one snapshot, so a backup is consistent while the app keeps writing;
- it writes `NAME.dump.partial`, which is fsynced and renamed only once complete, with its
  sha256 beside it (`NAME.dump.sha256`, the format `sha256sum -c` reads);
- before a restore touches the database the file is read to its end (`pg_restore` into
  /dev/null) and its checksum compared: a truncated or foreign file stops there;
- the restore replaces the archive's schemas as a whole in one transaction, committed only once
  the whole file went in: a failure halfway leaves the data that was there before.

| module | what it holds |
| --- | --- |
| `errors.py` | `BackupError`, the one error the commands turn into a message |
| `tools.py` | finding PostgreSQL's programs, their versions, libpq's environment |
| `catalogue.py` | the backups folder: names, listing, pruning, checksums |
| `progress.py` | running a program while reporting how far it got |
| `dump.py` | writing a backup |
| `validate.py` | reading a backup to its end before trusting it |
| `restore.py` | replacing the database's contents with a backup's |
| `schedule.py` | `dump --every`: a pg_dump on a schedule (cron-less hosts) |
| `database.py` | Django's connection, as the commands open and describe it |
| `archive.py` | the continuous archive on disk: base backups, WAL chains, checksums, window |
| `base_backup.py` | pg_basebackup into the archive, checked with pg_verifybackup |
| `protection.py` | pg_receivewal kept running, base backups when due, the WAL queue warning |
| `startup.py` | `serve` starting `manage.py protect` |
| `archive_status.py` | RPO, window, last error: for `status` and `/readyz` |
| `inventory.py` | base backups, window and dumps, each named: `status`, `backup --list` |
| `deprecated_forms.py` | the old `backup`/`restore` forms for pg_dump files, kept one release |
| `healthcheck.py` | the compose `backup` service's health: the current history backed up |
| `point_in_time.py` | restoring the data folder to a time, in a scratch folder first |
| `branches.py` | the archive's branches: one timeline per chain, where it forked, when served |
| `configured_server.py` | a configured server (compose `db`) as `protect` streams it |
| `mounted_data_folder.py` | a configured server's data folder mounted here, for `restore` |
| `offsite.py`, `offsite_restore.py` | barman-cloud: sending to S3, restoring from it |
| `verify_restore.py` | `backup --verify-restore`, the restore drill |
"""
