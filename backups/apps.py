from django.apps import AppConfig


class BackupsConfig(AppConfig):
    name = "backups"

    def ready(self):
        from backups.continuous.archive_status import readiness_entry
        from core.health import REPORTED_CHECKS

        REPORTED_CHECKS["archive"] = readiness_entry
