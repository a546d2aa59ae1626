"""Gives the DRF peer DRF's token table, and a DRF token to each user named; prints the keys.

`python -m bench.drf_peer.prepare USER_ID...` (the peer's environment: DJANGO_SECRET_KEY, PG*)
prints one JSON object, user id to token key. The app's own tokens are stored only as hashes, and
DRF stores its keys as they are: each configuration gets its own token for the same users.
"""

import json
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.drf_peer.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from rest_framework.authtoken.models import Token

    call_command("migrate", "authtoken", verbosity=0)
    user_ids = [int(argument) for argument in sys.argv[1:]]
    keys = {user_id: Token.objects.get_or_create(user_id=user_id)[0].key for user_id in user_ids}
    print(json.dumps(keys))


if __name__ == "__main__":
    main()
