"""Errors outside a view's own handling: JSON for API clients, Django's pages for browsers."""

import pytest
from django.http import HttpResponseNotFound, HttpResponseRedirect
from django.test import AsyncClient

from core.middleware import CommonMiddleware

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


# A CSRF cookie the check accepts the format of: the request gets as far as reading its body.
CSRF_COOKIE = "csrftoken=" + "a" * 32


@pytest.mark.parametrize("accept", [None, BROWSER, "application/json"])
async def test_an_error_page_that_fails_itself_answers_json(accept):
    """A form in a charset other than UTF-8: Django raises BadRequest where the CSRF check
    reads request.POST, and its HTML pages read it again. Never the server's own 500."""
    headers = {"Cookie": CSRF_COOKIE}
    if accept:
        headers["Accept"] = accept
    response = await AsyncClient(enforce_csrf_checks=True).post(
        "/healthz",
        "a=b",
        content_type="application/x-www-form-urlencoded; charset=iso-8859-1",
        headers=headers,
    )
    assert response.status_code == 400
    assert response.json() == {"detail": "Bad request."}


@pytest.mark.parametrize(
    ("path", "accept"),
    [("/healthz", "application/json"), ("/admin/login/", "application/json")],
)
async def test_a_failed_csrf_check_is_403_json_for_api_clients(path, accept):
    response = await AsyncClient(enforce_csrf_checks=True).post(path, headers={"Accept": accept})
    assert response.status_code == 403
    assert response.json() == {"detail": "CSRF verification failed: CSRF cookie not set."}


async def test_a_failed_csrf_check_is_still_djangos_page_for_browsers():
    response = await AsyncClient(enforce_csrf_checks=True).post(
        "/admin/login/", headers={"Accept": BROWSER}
    )
    assert response.status_code == 403
    assert response["Content-Type"].startswith("text/html")


@pytest.mark.project_classes
@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
async def test_a_missing_slash_keeps_the_method_and_says_where_as_json(method):
    response = await AsyncClient().generic(
        method, "/auth/whoami?x=1", headers={"Accept": "application/json"}
    )
    assert response.status_code == 308
    assert response["Location"] == "/auth/whoami/?x=1"
    assert response.json() == {"detail": "Moved permanently to /auth/whoami/?x=1."}


@pytest.mark.parametrize(("method", "status"), [("GET", 302), ("POST", 307)])
def test_a_subclass_s_redirect_class_is_used(rf, method, status):
    """As in Django: a CommonMiddleware subclass may redirect temporarily."""

    class TemporaryRedirects(CommonMiddleware):
        response_redirect_class = HttpResponseRedirect

    request = rf.generic(method, "/auth/whoami")
    response = TemporaryRedirects(lambda request: HttpResponseNotFound())(request)
    assert (response.status_code, response["Location"]) == (status, "/auth/whoami/")


async def test_a_missing_slash_on_a_get_is_still_a_301():
    response = await AsyncClient().get("/auth/whoami", headers={"Accept": BROWSER})
    assert response.status_code == 301
    assert response["Location"] == "/auth/whoami/"
