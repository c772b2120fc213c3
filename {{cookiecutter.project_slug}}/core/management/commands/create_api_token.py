from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from core.models import ApiToken


class Command(BaseCommand):
    help = "Create an API token for USERNAME, creating the user if needed; prints the token last."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="What the token is for.")

    def handle(self, *args, username, name, **options):
        user_model = get_user_model()
        user, created = user_model.objects.get_or_create(**{user_model.USERNAME_FIELD: username})
        if created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
            self.stdout.write(f"Created user {username} (no password: token access only).")
        _, raw = ApiToken.issue(user, name=name)
        self.stdout.write(f"API token for {username}, shown only once: {raw}")
