"""GET /: the home page lists every feature and carries the live panels, CSP-clean."""

import re

import pytest
from django.apps import apps
from django.urls import resolve
from django.utils.html import escape

from core.testing import HANDLER_HOPS, request_hops

SCRIPT_TAG = re.compile(r"<script\b([^>]*)>(.*?)</script>", re.DOTALL)
ASSET_URL = re.compile(r'(?:src|href)="(/static/[^"]+)"')


def described_apps():
    return [app for app in apps.get_app_configs() if hasattr(app, "summary")]


async def test_home_lists_every_enabled_feature(async_client):
    response = await async_client.get("/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    # Names and summaries are text, escaped as Django's autoescaping does: the
    # project's name may hold ' " & < >.
    assert f"<title>{escape(apps.get_app_config('core').verbose_name)}</title>" in html
    for app in described_apps():
        assert escape(app.verbose_name) in html
        assert escape(app.summary) in html
    if not described_apps():
        assert "No optional feature is enabled." in html


async def test_home_links_what_the_features_offer(async_client):
    html = (await async_client.get("/")).content.decode()
    links = [app.home_link for app in described_apps() if getattr(app, "home_link", None)]
    for text, _ in links:
        assert f">{escape(text)}</a>" in html
    for href in re.findall(r'href="(/[^"]*)"', html):
        if not href.startswith("/static/"):
            resolve(href)  # raises Resolver404 for a dead link


async def test_home_has_a_live_panel_per_live_feature(async_client):
    html = (await async_client.get("/")).content.decode()
    for app in apps.get_app_configs():
        panel_id = f'id="{app.label}-panel"'
        assert (panel_id in html) == hasattr(app, "home_panel"), app.label


async def test_scripts_and_styles_are_files_the_csp_allows(async_client):
    response = await async_client.get("/")
    html = response.content.decode()
    # No inline script: each one is a same-origin file, which script-src 'self' allows.
    for attributes, body in SCRIPT_TAG.findall(html):
        assert 'src="/static/' in attributes
        assert not body.strip()
    assert "style=" not in html
    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "default-src 'self'" in policy
    assets = ASSET_URL.findall(html)
    assert "/static/core/home.css" in assets
    for url in assets:
        asset = await async_client.get(url)
        assert asset.status_code == 200, url
        assert b"".join([chunk async for chunk in asset.streaming_content])


async def test_the_panels_shared_script_runs_before_theirs_and_only_with_them(async_client):
    """core/readiness.js defines failingChecks(), which every panel's script calls."""
    html = (await async_client.get("/")).content.decode()
    scripts = [url for url in ASSET_URL.findall(html) if url.endswith(".js")]
    if any(hasattr(app, "home_panel") for app in apps.get_app_configs()):
        # Deferred scripts run in document order.
        assert scripts[0] == "/static/core/readiness.js"
        assert len(scripts) > 1
    else:
        assert scripts == []


@pytest.mark.project_classes
async def test_home_renders_on_the_event_loop():
    assert len(await request_hops("/")) == HANDLER_HOPS


async def test_home_answers_head_and_refuses_post(async_client):
    assert (await async_client.head("/")).status_code == 200
    assert (await async_client.post("/")).status_code == 405
