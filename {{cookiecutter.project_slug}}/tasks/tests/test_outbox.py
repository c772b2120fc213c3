"""Enqueueing writes a row in the caller's transaction: it commits or rolls back with the data."""

import pytest
from django.contrib.auth import get_user_model
from django.db import transaction
from django_tasks_db.models import DBTaskResult

from tasks.tests import jobs

pytestmark = pytest.mark.django_db(transaction=True)


class Abort(Exception):
    pass


def test_a_task_enqueued_in_a_rolled_back_transaction_does_not_exist():
    with pytest.raises(Abort), transaction.atomic():
        get_user_model().objects.create(username="buyer")
        result = jobs.add.enqueue(1, 2)
        assert DBTaskResult.objects.filter(id=result.id).exists()  # seen inside
        raise Abort
    assert not DBTaskResult.objects.filter(id=result.id).exists()
    assert not get_user_model().objects.exists()


def test_a_task_enqueued_in_a_committed_transaction_exists():
    with transaction.atomic():
        get_user_model().objects.create(username="buyer")
        result = jobs.add.enqueue(1, 2)
    db_result = DBTaskResult.objects.get(id=result.id)
    assert (db_result.status, db_result.args_kwargs) == ("READY", {"args": [1, 2], "kwargs": {}})
