"""core.middleware.DatabaseErrorMiddleware: a value the database refuses is a 400, never a 500."""

import logging

import pytest
from django.contrib.auth import get_user_model
from django.db import IntegrityError, connection
from django.http import JsonResponse
from django.urls import path

from config.urls import urlpatterns as project_urlpatterns

BIG = 2**63  # one past the largest 64-bit integer


async def too_long(request):
    await get_user_model().objects.acreate(username="x" * 151)


async def nul_character(request):
    await get_user_model().objects.filter(username="a\x00b").aexists()


async def big_id(request):
    await get_user_model().objects.acreate(id=BIG, username="big")


async def big_offset(request):
    [user async for user in get_user_model().objects.all()[BIG : BIG + 10]]


async def duplicate(request):
    await get_user_model().objects.acreate(username="twice")
    await get_user_model().objects.acreate(username="twice")


# Each view, and the databases that refuse its value.
CASES = {
    "too-long": (too_long, {"postgresql"}),
    "nul-character": (nul_character, {"postgresql"}),
    "big-id": (big_id, {"postgresql", "sqlite"}),
    "big-offset": (big_offset, {"postgresql", "sqlite"}),
}


def answer(view):
    async def wrapped(request):
        await view(request)
        return JsonResponse({"stored": True})

    return wrapped


urlpatterns = [
    *project_urlpatterns,
    *(path(f"tests/db/{name}/", answer(view)) for name, (view, _) in CASES.items()),
    path("tests/db/duplicate/", answer(duplicate)),
]


@pytest.mark.django_db(transaction=True)
@pytest.mark.urls(__name__)
@pytest.mark.parametrize("case", CASES)
async def test_a_value_the_database_refuses_is_a_400(case, async_client, caplog):
    refused = connection.vendor in CASES[case][1]
    response = await async_client.get(f"/tests/db/{case}/")
    if not refused:  # this database stores it
        assert response.json() == {"stored": True}
        return
    assert response.status_code == 400
    assert response.json() == {"detail": "The request holds a value the database cannot store."}
    warned = [r for r in caplog.records if r.name == "core.middleware"]
    assert [r.levelno for r in warned] == [logging.WARNING]
    assert "The database refused a value" in warned[0].getMessage()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.django_db(transaction=True)
@pytest.mark.urls(__name__)
async def test_other_integrity_errors_still_raise(async_client):
    """A unique constraint is the code's business (409, or a bug): not a client's bad value."""
    with pytest.raises(IntegrityError):
        await async_client.get("/tests/db/duplicate/")
