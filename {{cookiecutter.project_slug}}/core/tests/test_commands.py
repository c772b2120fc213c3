import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from core.models import ApiToken, hash_token

pytestmark = pytest.mark.django_db


def test_create_api_token_creates_the_user_and_prints_the_token_last(capsys):
    call_command("create_api_token", "ada", "--name", "ci")
    token = capsys.readouterr().out.split()[-1]
    user = get_user_model().objects.get(username="ada")
    assert not user.has_usable_password()
    stored = ApiToken.objects.get(user=user)
    assert stored.key_hash == hash_token(token)
    assert stored.name == "ci"


def test_create_api_token_reuses_an_existing_user(capsys):
    user = get_user_model().objects.create_user("grace", password="a long passphrase")
    call_command("create_api_token", "grace")
    call_command("create_api_token", "grace")
    first, second = (line.split()[-1] for line in capsys.readouterr().out.splitlines())
    assert first != second
    assert ApiToken.objects.filter(user=user).count() == 2
    user.refresh_from_db()
    assert user.has_usable_password()


def test_every_model_change_has_a_migration():
    # Exits non-zero (SystemExit) when a model differs from its migrations.
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)
