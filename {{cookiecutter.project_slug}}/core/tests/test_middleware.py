"""core.middleware: no thread hops under ASGI, and exactly Django's outcomes."""

import re

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import AsyncClient, Client, override_settings

from core.testing import HANDLER_HOPS, count_thread_hops, request_hops, stock_middleware

STOCK = stock_middleware()
STACKS = {"native": settings.MIDDLEWARE, "stock": STOCK}


@pytest.mark.project_classes
async def test_healthz_pays_no_hop_for_middleware():
    assert len(await request_hops("/healthz", settings.MIDDLEWARE)) == HANDLER_HOPS


async def test_the_stock_stack_pays_a_hop_per_hook():
    assert "django.middleware.csrf.CsrfViewMiddleware" in STOCK
    stock = await request_hops("/healthz", STOCK)
    # Security 2, Session 2, Common 2, CSRF 3, Auth 1, Messages 2, XFrame 1, CSP 2
    assert len(stock) == HANDLER_HOPS + 15


@pytest.mark.project_classes
@pytest.mark.urls("core.tests.urls")
async def test_a_sync_view_costs_one_hop():
    assert len(await request_hops("/tests/sync/", settings.MIDDLEWARE)) == HANDLER_HOPS + 1


# Headers whose value differs on every request, whichever the stack.
PER_REQUEST = {"Expires", "X-Request-ID", "Server-Timing"}


def normalise(response) -> dict:
    """What must match between the stacks: status, headers, cookie attributes, body shape."""
    headers = {
        name: "<varies>" if name in PER_REQUEST else re.sub(r"'nonce-[^']+'", "'nonce'", value)
        for name, value in response.headers.items()
        if name != "Content-Length"
    }
    cookies = {
        name: {key: value for key, value in morsel.items() if key != "expires"}
        for name, morsel in response.cookies.items()
    }
    body = response.content if not response.streaming else b""
    body = re.sub(rb'value="[A-Za-z0-9]{64}"', b'value="token"', body)
    body = re.sub(rb'nonce="[^"]+"', b'nonce="x"', body)
    return {"status": response.status_code, "headers": headers, "cookies": cookies, "body": body}


SCENARIOS = {
    "plain GET": ("get", "/healthz", {}),
    "404": ("get", "/no/such/page/", {}),
    "append slash": ("get", "/auth/whoami", {}),
    "admin login form (CSRF cookie)": ("get", "/admin/login/", {}),
    "POST without CSRF token": ("post", "/admin/login/", {"data": {"username": "x"}}),
    "wrong method": ("post", "/healthz", {}),
    "disallowed host": ("get", "/healthz", {"headers": {"host": "evil.example"}}),
}


async def run_async(middleware, method, path, extra, **client_options):
    with override_settings(MIDDLEWARE=middleware):
        client = AsyncClient(enforce_csrf_checks=True, raise_request_exception=False)
        return await getattr(client, method)(path, **extra, **client_options)


def run_sync(middleware, method, path, extra, **client_options):
    with override_settings(MIDDLEWARE=middleware):
        client = Client(enforce_csrf_checks=True, raise_request_exception=False)
        return getattr(client, method)(path, **extra, **client_options)


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("ssl_redirect", [False, True])
async def test_same_outcome_as_django_under_asgi(scenario, ssl_redirect, settings):
    settings.SECURE_SSL_REDIRECT = ssl_redirect
    method, path, extra = SCENARIOS[scenario]
    native = await run_async(settings.MIDDLEWARE, method, path, extra)
    stock = await run_async(STOCK, method, path, extra)
    assert normalise(native) == normalise(stock)


# Each setting that changes what SecurityMiddleware, XFrameOptionsMiddleware
# and ContentSecurityPolicyMiddleware write: Django's own tests barely reach
# their async paths.
HEADER_SETTINGS = {
    "the project's": {},
    "HSTS for a while, alone": {
        "SECURE_HSTS_SECONDS": 600,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": False,
        "SECURE_HSTS_PRELOAD": False,
    },
    "HSTS off": {"SECURE_HSTS_SECONDS": 0},
    "redirect to an HTTPS host": {"SECURE_SSL_REDIRECT": True, "SECURE_SSL_HOST": "tls.example"},
    "no referrer, opener or nosniff header": {
        "SECURE_REFERRER_POLICY": None,
        "SECURE_CROSS_ORIGIN_OPENER_POLICY": None,
        "SECURE_CONTENT_TYPE_NOSNIFF": False,
    },
    "several referrer policies": {"SECURE_REFERRER_POLICY": ["origin", "strict-origin"]},
    "frames from the same origin": {"X_FRAME_OPTIONS": "SAMEORIGIN"},
    "CSP report-only": {
        "SECURE_CSP": {},
        "SECURE_CSP_REPORT_ONLY": {"script-src": ["'self'", "'nonce-{nonce}'"]},
    },
    "no CSP": {"SECURE_CSP": {}, "SECURE_CSP_REPORT_ONLY": {}},
}


async def get_each(middleware, paths, secure: bool) -> list:
    """GET each path through one client, its middleware loaded once."""
    with override_settings(MIDDLEWARE=middleware):
        client = AsyncClient(raise_request_exception=False)
        return [await client.get(path, secure=secure) for path in paths]


@pytest.mark.urls("core.tests.urls")
@pytest.mark.parametrize("secure", [False, True], ids=["http", "https"])
@pytest.mark.parametrize("variant", HEADER_SETTINGS)
async def test_the_header_middleware_writes_what_django_s_does(variant, secure, settings):
    from core.tests.urls import HEADER_VIEWS

    for name, value in HEADER_SETTINGS[variant].items():
        setattr(settings, name, value)
    seen = set()
    natives = await get_each(settings.MIDDLEWARE, HEADER_VIEWS, secure)
    stocks = await get_each(STOCK, HEADER_VIEWS, secure)
    for path, native, stock in zip(HEADER_VIEWS, natives, stocks, strict=True):
        assert normalise(native) == normalise(stock), path
        assert native.status_code == (301 if settings.SECURE_SSL_REDIRECT and not secure else 200)
        seen |= set(native.headers)
    # The settings took effect: each header is written by at least one of the views.
    if secure and settings.SECURE_HSTS_SECONDS:
        assert "Strict-Transport-Security" in seen
    if settings.SECURE_CSP_REPORT_ONLY:
        assert "Content-Security-Policy-Report-Only" in seen


@pytest.mark.django_db
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_same_outcome_as_django_under_wsgi(scenario):
    method, path, extra = SCENARIOS[scenario]
    native = run_sync(settings.MIDDLEWARE, method, path, extra)
    stock = run_sync(STOCK, method, path, extra)
    assert normalise(native) == normalise(stock)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("stack", STACKS)
async def test_login_with_csrf_token_saves_the_session(stack):
    """A session save and a CSRF round trip, through each stack: same result."""
    await get_user_model().objects.acreate_user("ada", password="a long passphrase", is_staff=True)
    with override_settings(MIDDLEWARE=STACKS[stack]):
        client = AsyncClient(enforce_csrf_checks=True)
    form = await client.get("/admin/login/")
    token = form.cookies[settings.CSRF_COOKIE_NAME].value
    response = await client.post(
        "/admin/login/",
        {"username": "ada", "password": "a long passphrase", "csrfmiddlewaretoken": token},
    )
    assert response.status_code == 302
    assert settings.SESSION_COOKIE_NAME in response.cookies
    assert (await client.get("/admin/")).status_code == 200


@pytest.mark.django_db(transaction=True)
@pytest.mark.urls("core.tests.urls")
@pytest.mark.parametrize("stack", STACKS)
async def test_messages_and_sessions_round_trip(stack):
    with override_settings(MIDDLEWARE=STACKS[stack]):
        client = AsyncClient()
    assert (await client.get("/tests/add-message/")).status_code == 200
    response = await client.get("/tests/read-messages/")
    assert response.json() == {"messages": ["saved"]}
    assert (await client.get("/tests/read-messages/")).json() == {"messages": []}


def test_deploy_checks_still_see_the_security_middleware(settings):
    settings.DEBUG = False
    settings.SECURE_HSTS_SECONDS = 0
    with pytest.raises(SystemCheckError, match=r"security\.W004"):
        call_command("check", deploy=True, fail_level="WARNING")


@pytest.mark.django_db(transaction=True)
@override_settings(CSRF_USE_SESSIONS=True)
async def test_csrf_in_the_session_takes_its_hops_and_still_protects():
    """With the secret in the session every hook may load it: each runs on the thread."""
    client = AsyncClient(enforce_csrf_checks=True)
    login = await client.get(f"/{settings.ADMIN_URL_PATH}login/")
    assert login.status_code == 200
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.content.decode())[1]
    # The secret is in the session, not in a cookie.
    assert settings.CSRF_COOKIE_NAME not in client.cookies
    form = {"username": "nobody", "password": "wrong"}
    refused = await client.post(f"/{settings.ADMIN_URL_PATH}login/", form)
    assert refused.status_code == 403
    with count_thread_hops() as hops:
        checked = await client.post(
            f"/{settings.ADMIN_URL_PATH}login/", {**form, "csrfmiddlewaretoken": token}
        )
    assert checked.status_code == 200  # the form again, with its error: past the CSRF check
    assert "CsrfViewMiddleware.process_view" in hops
