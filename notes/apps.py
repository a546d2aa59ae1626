from django.apps import AppConfig
from django.urls import reverse

from .conf import import_too_large, setting


class NotesConfig(AppConfig):
    name = "notes"
    default_auto_field = "django.db.models.BigAutoField"

    def large_bodies(self) -> dict[str, tuple[int, str]]:
        """Where the front door lets a body past MAX_REQUEST_BYTES: path -> (limit, 413 detail).

        server/front_door.py asks every installed app that has this method.
        """
        limit = setting("IMPORT_MAX_REQUEST_BYTES")
        return {reverse("api:start_import"): (limit, import_too_large(limit))}
