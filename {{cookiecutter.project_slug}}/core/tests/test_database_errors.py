"""core.middleware.DatabaseErrorMiddleware: a value the database refuses is a 400, never a 500.

And a database that does not answer is a 503 JSON, with DEBUG on as with it off.
"""

import logging

import pytest
from django.contrib.auth import get_user_model
from django.db import IntegrityError, connection
from django.http import JsonResponse
from django.urls import path

from config.urls import urlpatterns as project_urlpatterns
from core.models import ApiToken
from core.testing import database_down

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


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize("credential", ["token", "session"])
async def test_the_database_down_is_a_503_with_debug_on_or_off(
    async_client, credential, debug, settings
):
    """Plain views: Django's debug page never replaces the 503 (ninja's API: articles/tests)."""
    user = await get_user_model().objects.acreate(username="someone", is_staff=True)
    if credential == "token":
        _, raw = await ApiToken.aissue(user)
        path, headers = "/auth/whoami/", {"Authorization": f"Bearer {raw}"}
    else:
        await async_client.aforce_login(user)
        path, headers = "/admin/", {}
    settings.DEBUG = debug
    with database_down():
        response = await async_client.get(path, headers=headers)
    assert response.status_code == 503
    assert response.json() == {"detail": "The database is unavailable; retry shortly."}
    assert response["Retry-After"] == "5"
