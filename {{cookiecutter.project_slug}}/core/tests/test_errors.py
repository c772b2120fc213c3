"""Errors outside a view's own handling: JSON for API clients, Django's pages for browsers."""

import pytest
from django.test import AsyncClient

BROWSER = "text/html,application/xhtml+xml,*/*;q=0.8"


@pytest.mark.parametrize(
    ("path", "accept"),
    [
        ("/api/nothing/", BROWSER),
        ("/api/nothing/", "*/*"),
        ("/nothing/", "application/json"),
    ],
)
async def test_a_path_that_matches_nothing_is_404_json_for_api_clients(path, accept):
    response = await AsyncClient().get(path, headers={"Accept": accept})
    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found"}


async def test_browsers_still_get_the_html_page():
    response = await AsyncClient().get("/nothing/", headers={"Accept": BROWSER})
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


async def test_a_disallowed_host_is_400_json_for_api_clients():
    response = await AsyncClient().get("/api/nothing/", headers={"Host": "evil.example"})
    assert response.status_code == 400
    assert response.json() == {"detail": "Bad request."}
