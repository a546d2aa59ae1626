from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from accounts import throttle


class Command(BaseCommand):
    help = (
        "Forget an account's failed logins, from every address: its own limits no longer "
        "refuse or slow it down. Limits per address still count other accounts' failures."
    )

    def add_arguments(self, parser):
        parser.add_argument("username", help="the account to unlock")

    def handle(self, *args, **options):
        username = options["username"]
        User = get_user_model()
        try:
            User._default_manager.get_by_natural_key(username)
        except User.DoesNotExist:
            raise CommandError(f"No user {username!r}: check the spelling.") from None
        cleared = throttle.unlock(username=username)
        noun = "failed login" if cleared == 1 else "failed logins"
        self.stdout.write(f"Cleared {cleared} {noun} of {username}.")
