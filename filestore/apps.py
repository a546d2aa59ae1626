from django.apps import AppConfig


class FilestoreConfig(AppConfig):
    name = "filestore"
    verbose_name = "Protected files"

    def ready(self):
        from django.core import checks

        from .checks import check_protected_storage

        # With --deploy only: on S3 the check is a request to the bucket, which `manage.py`'s
        # every command would otherwise make. `serve` and `prepare` check at start-up.
        checks.register(check_protected_storage, "filestore", deploy=True)
