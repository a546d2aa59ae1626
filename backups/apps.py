from django.apps import AppConfig


class BackupsConfig(AppConfig):
    name = "backups"

    def ready(self):
        from backups.archive_status import readiness_entry
        from core.health import REPORTED_CHECKS

        REPORTED_CHECKS["archive"] = readiness_entry
