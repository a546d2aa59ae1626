#!/usr/bin/env python
"""Django's command-line utility; configuration errors end in one clear line, not a traceback."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    from pgembedded.errors import EmbeddedPostgresError

    try:
        execute_from_command_line(sys.argv)
    except (ImproperlyConfigured, EmbeddedPostgresError) as error:
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    main()
