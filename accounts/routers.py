"""Who is signed in, and what they may do, is read on the primary: never on a replica.

A replica may be up to REPLICA_MAX_LAG_SECONDS behind. Read there, a session ended by a logout,
a user deactivated or a permission taken away would still open the admin on a GET. Sessions are
loaded lazily, inside the request that ReadYourWritesMiddleware routes, so no middleware order
can avoid that: the router does. Put in front of core.replicas.PrimaryReplicaRouter
(config/settings.py); it answers nothing for other models.
"""

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS

# Users, groups and permissions; sessions; our tokens and failed logins; a custom user model's.
AUTHENTICATION_APPS = {"auth", "sessions", "accounts", settings.AUTH_USER_MODEL.split(".")[0]}


class AuthenticationOnPrimaryRouter:
    def db_for_read(self, model, **hints) -> str | None:
        return DEFAULT_DB_ALIAS if model._meta.app_label in AUTHENTICATION_APPS else None
