import re

from django.apps import AppConfig
from django.urls import reverse

from .conf import attachment_too_large, import_too_large, setting

# Stands for any note's id in a path reversed below.
_ANY_ID = 918273645


class NotesConfig(AppConfig):
    name = "notes"
    default_auto_field = "django.db.models.BigAutoField"

    def large_bodies(self) -> dict[str, tuple[int, str]]:
        """Where the front door lets a body past MAX_REQUEST_BYTES: path -> (limit, 413 detail);
        a path that begins with "^" is a regular expression.

        server/front_door.py asks every installed app that has this method.
        """
        imports = setting("IMPORT_MAX_REQUEST_BYTES")
        attachment = setting("ATTACHMENT_MAX_BYTES")
        upload = reverse("api:upload_attachment", kwargs={"note_id": _ANY_ID})
        any_note = "^" + re.escape(upload).replace(str(_ANY_ID), "[0-9]+") + "$"
        return {
            reverse("api:start_import"): (imports, import_too_large(imports)),
            any_note: (attachment, attachment_too_large(attachment)),
        }
