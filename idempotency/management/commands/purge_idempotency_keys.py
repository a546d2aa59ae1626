from django.core.management.base import BaseCommand

from idempotency.models import KEY_LIFETIME
from idempotency.services import purge_expired


class Command(BaseCommand):
    help = (
        f"Delete Idempotency-Key records older than {KEY_LIFETIME}. Each keyed write already "
        f"deletes its owner's; run this from cron to clear owners who stopped writing."
    )

    def handle(self, *args, **options):
        self.stdout.write(f"Deleted {purge_expired()} expired idempotency keys")
