"""Reads: where a stored file is on disk, and which stored files the rows name."""

from pathlib import Path

from django.apps import apps
from django.db import models

from .names import is_name
from .storage import ProtectedFileSystemStorage, protected_storage


def file_local_path(name: str) -> Path | None:
    """The stored file's path (for the front door's X-Accel-Redirect); None on S3."""
    storage = protected_storage()
    if isinstance(storage, ProtectedFileSystemStorage):
        return storage.local_path(name)
    return None


def protected_file_fields() -> list[tuple[type[models.Model], models.FileField]]:
    """Every model's FileField that stores into the protected store."""
    found = []
    for model in apps.get_models():
        for field in model._meta.get_fields():
            if isinstance(field, models.FileField) and _is_protected(field):
                found.append((model, field))
    return found


def _is_protected(field: models.FileField) -> bool:
    storage = getattr(field, "_storage_callable", None)
    return storage is protected_storage or field.storage is protected_storage()


def file_names_in_use(using: str = "default") -> set[str]:
    """The stored names the rows name now."""
    names: set[str] = set()
    for model, field in protected_file_fields():
        values = (
            model._base_manager.using(using)
            .exclude(**{field.attname: ""})
            .values_list(field.attname, flat=True)
            .distinct()
        )
        names.update(value for value in values if value and is_name(value))
    return names
