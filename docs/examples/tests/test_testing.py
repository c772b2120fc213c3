"""The guide's "Testing" section: what pytest-django and pytest-asyncio do with async tests."""

import pytest
from asgiref.sync import sync_to_async
from django.db import connection


@pytest.fixture
def test_transaction_is_open(db):
    # A sync fixture runs where pytest-django opened the test's transaction.
    return connection.in_atomic_block


# --8<-- [start:escape]
@pytest.mark.django_db  # without transaction=True
async def test_async_orm_runs_outside_the_test_transaction(test_transaction_is_open):
    # pytest-django opened a transaction to roll the test back...
    assert test_transaction_is_open
    # ...but async ORM calls run on asgiref's thread, on a connection of its
    # own, outside that transaction: what they write is committed for good.
    assert not await sync_to_async(lambda: connection.in_atomic_block)()


# --8<-- [end:escape]


def test_there_is_no_event_loop_fixture(request):
    # pytest-asyncio 1.0 removed it: async tests and fixtures get the running
    # loop from asyncio.get_running_loop().
    with pytest.raises(pytest.FixtureLookupError):
        request.getfixturevalue("event_loop")
