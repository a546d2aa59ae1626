from django.core.management.base import BaseCommand, CommandError

from pgembedded.errors import EmbeddedPostgresError
from server.startup import StartupError, prepare


class Command(BaseCommand):
    help = (
        "Run the start sequence without serving: database, wait, migrate (advisory-locked), "
        "superuser, a check of the file store. For one-shot migration jobs."
    )

    def handle(self, *args, **options):
        try:
            prepare(say=self.stdout.write)
        except (StartupError, EmbeddedPostgresError) as error:
            raise CommandError(str(error)) from None
