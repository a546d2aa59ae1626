from django.apps import AppConfig


class PgembeddedConfig(AppConfig):
    name = "pgembedded"
