"""The suite's cleanup after `transaction=True` tests (conftest.py's fixture_teardown).

The two tests run in this order: the first writes rows to tables that refer to
each other and changes nothing migrations wrote; the second finds them gone and
the migrated rows intact, as Django's own flush would leave them.
"""

import pytest
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType

from core.models import User

pytestmark = pytest.mark.django_db(transaction=True)


def test_writes_rows_that_refer_to_each_other():
    user = User.objects.create_user("cleanup", password="x")
    group = Group.objects.create(name="cleanup")
    user.groups.add(group)
    group.permissions.add(Permission.objects.first())


def test_the_next_test_finds_them_gone_and_the_migrated_rows_kept():
    assert not User.objects.exists()
    assert not Group.objects.exists()
    assert not User.groups.through.objects.exists()
    assert not Group.permissions.through.objects.exists()
    assert ContentType.objects.filter(app_label="core", model="user").exists()
    assert Permission.objects.filter(codename="add_user").exists()
