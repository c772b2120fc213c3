import json

import pytest
from django.contrib.auth import get_user_model
from django.http import JsonResponse

from core.auth import auser_from_token, parse_bearer, token_required
from core.models import ApiToken, hash_token

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def token():
    user = await get_user_model().objects.acreate(username="ada")
    _, raw = await ApiToken.aissue(user, name="tests")
    return raw


async def test_missing_token_is_401(async_client):
    response = await async_client.get("/auth/whoami/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert "Authorization: Bearer" in response.json()["detail"]


@pytest.mark.parametrize(
    "header",
    ["Basic YWRhOnNlY3JldA==", "Bearer", "Bearer short", "Bearer " + "x" * 43, "Token abc"],
)
async def test_wrong_credentials_are_401(async_client, token, header):
    response = await async_client.get("/auth/whoami/", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json()["detail"]


async def test_right_token_authenticates(async_client, token):
    response = await async_client.get("/auth/whoami/", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.json() == {"username": "ada"}


async def test_scheme_is_case_insensitive(async_client, token):
    response = await async_client.get("/auth/whoami/", headers={"Authorization": f"bearer {token}"})
    assert response.status_code == 200


async def test_inactive_user_token_is_refused(async_client, token):
    await get_user_model().objects.filter(username="ada").aupdate(is_active=False)
    response = await async_client.get("/auth/whoami/", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401


async def test_only_the_hash_is_stored(token):
    stored = await ApiToken.objects.aget()
    assert stored.key_hash == hash_token(token)
    assert token not in {stored.key_hash, stored.name}
    assert stored.prefix == token[:8]


async def test_user_and_auser_agree(rf, token):
    request = rf.get("/")
    user = await auser_from_token(request, token)
    assert request.user == user
    assert await request.auser() == user
    assert user.username == "ada"


def test_sync_views_use_the_same_auth(rf):
    @token_required
    def view(request):
        return JsonResponse({"username": request.user.username})

    user = get_user_model().objects.create(username="grace")
    _, raw = ApiToken.issue(user)
    assert view(rf.get("/")).status_code == 401
    response = view(rf.get("/", headers={"Authorization": f"Bearer {raw}"}))
    assert response.status_code == 200
    assert json.loads(response.content) == {"username": "grace"}


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc", "abc"),
        ("Bearer  abc", "abc"),  # 1*SP (RFC 9110 11.4)
        ("bEaReR   abc ", "abc"),
        ("Bearer", ""),
        ("Bearer a b", "a b"),
        ("Basic abc", None),
        ("", None),
    ],
)
def test_one_parser_reads_every_bearer_header(header, token):
    assert parse_bearer(header) == token
