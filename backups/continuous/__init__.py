"""Continuous protection with point-in-time restore (docs/data-safety.md).

`manage.py protect` streams the WAL with pg_receivewal into the archive and takes base backups
with pg_basebackup (checked with pg_verifybackup), and with BACKUP_URL sends both off-site with
barman-cloud. `serve` starts it for the embedded database (`startup.py`); the compose `backup`
service runs it against the `db` service (a configured server, `configured_server.py`).
`restore --to TIME` / `--latest` replay them in a scratch folder (`point_in_time.py` chooses
what, `recovery.py` runs PostgreSQL on it), which replaces the data folder only once it worked:
the embedded one, or the compose db volume's (`mounted_data_folder.py`, the `restore` service).
`backup --verify-restore` is the restore drill (`verify_restore.py`).
"""
