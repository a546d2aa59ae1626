"""The old forms of `backup` and `restore` that made and loaded pg_dump files, kept one release.

Compose files, crontabs and scripts out there still run them: each keeps working, after one line
on stderr (stdout stays what scripts parse) that says what to run instead.
"""

from django.core.management.base import OutputWrapper


def say_deprecated(stderr: OutputWrapper, old: str, new: str) -> None:
    stderr.write(
        f"Deprecated: `manage.py {old}` is now `manage.py {new}`; the old form goes in the next "
        f"release."
    )
