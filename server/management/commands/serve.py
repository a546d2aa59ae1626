from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from pgembedded.errors import EmbeddedPostgresError
from server.startup import StartupError, prepare
from server.wsgi_servers import ServerConfigError, run_server, server_options


class Command(BaseCommand):
    help = "Start everything: the database (embedded unless configured), migrations, the server."

    def handle(self, *args, **options):
        try:
            prepare(say=self.stdout.write)
        except (StartupError, EmbeddedPostgresError) as error:
            raise CommandError(str(error)) from None
        self.stdout.write(f"Serving on http://{settings.LISTEN_HOST}:{settings.PORT}/")
        # "config.wsgi.application" -> "config.wsgi:application", the form both servers take.
        module, _, name = settings.WSGI_APPLICATION.rpartition(".")
        try:
            run_server(f"{module}:{name}", server_options())
        except ServerConfigError as error:
            raise CommandError(str(error)) from None
