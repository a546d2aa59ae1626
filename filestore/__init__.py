"""Protected file storage for any model's FileField: content-addressed, immutable, archived.

A file is stored once under its sha256 (`<sha256[:2]>/<sha256>`), never overwritten, and made
durable (and copied into the local archive, `BACKUP_DIR/files`) before `file_store` returns, so a
row that names it can commit. Models name files with
`models.FileField(storage=filestore.storage.protected_storage, max_length=...)`.
"""
