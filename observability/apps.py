from django.apps import AppConfig
from django.conf import settings


class ObservabilityConfig(AppConfig):
    name = "observability"

    def ready(self):
        from django.contrib.auth.signals import user_login_failed
        from django.core.signals import request_finished

        from . import events, request_id

        user_login_failed.connect(events.login_failed, dispatch_uid="count_failed_login")
        request_finished.connect(request_id.forget, dispatch_uid="forget_request_id")
        if settings.TRACING:
            from . import tracing

            tracing.start()
