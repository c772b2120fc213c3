import json
import os
from unittest import mock

import pytest
from django.test import override_settings

from articles.models import Article, Tag
from articles.pagination import MAX_PAGE, MAX_PAGE_SIZE
from core.asgi import ASGIHandler
from core.testing import asgi_request, database_down
from core.tests.test_settings import PRODUCTION_KEY, read_settings

pytestmark = pytest.mark.django_db(transaction=True)

ARTICLES = "/api/articles/"


def article_url(article_id: int) -> str:
    return f"{ARTICLES}{article_id}/"


async def create(async_client, headers, **fields):
    body = {"title": "Hello", "content": "Body", "tags": [], "published": True, **fields}
    response = await async_client.post(
        ARTICLES, body, content_type="application/json", headers=headers
    )
    assert response.status_code == 201, response.content
    return response.json()


async def nothing_written():
    return await Article.objects.acount() == 0 and await Tag.objects.acount() == 0


class TestCreate:
    async def test_creates_the_article_and_its_tags(self, async_client, author):
        _, headers = author
        body = await create(async_client, headers, tags=["Django", " async ", "django"])
        assert body["id"] > 0
        assert body["title"] == "Hello"
        assert body["author"] == "ada"
        assert body["published"] is True
        assert sorted(body["tags"]) == ["async", "django"]
        assert await Article.objects.filter(pk=body["id"], tags__name="async").aexists()

    async def test_a_tag_the_schema_admits_is_never_too_long_once_lowercased(
        self, async_client, author
    ):
        """Each "İ" lowercases to two characters: 50 of them met the schema and got 422."""
        _, headers = author
        body = await create(async_client, headers, tags=["İ" * 50, "İstanbul"])
        assert sorted(body["tags"]) == ["i" * 50, "istanbul"]

    async def test_reuses_existing_tags(self, async_client, author):
        _, headers = author
        await create(async_client, headers, tags=["django"])
        await create(async_client, headers, tags=["django", "orm"])
        assert [tag.name async for tag in Tag.objects.all()] == ["django", "orm"]

    @pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer " + "x" * 43}])
    async def test_needs_a_valid_token(self, async_client, headers):
        response = await async_client.post(
            ARTICLES, {"title": "x"}, content_type="application/json", headers=headers
        )
        assert response.status_code == 401
        assert response.json()["detail"]
        assert await nothing_written()

    async def test_malformed_json_is_400(self, async_client, author):
        _, headers = author
        response = await async_client.post(
            ARTICLES, b'{"title": "x",', content_type="application/json", headers=headers
        )
        assert response.status_code == 400
        assert response.json()["detail"].startswith("Cannot parse request body: not JSON")
        assert await nothing_written()

    @pytest.mark.parametrize(
        ("body", "problem"),
        [
            (b'{"title": "\\ud800"}', "lone surrogate"),
            (b'{"title": "a\\u0000b"}', "NUL character"),
            (b"[" * 5000 + b"]" * 5000, "nested deeper"),
            (b'{"title": "x", "n": NaN}', "NaN is not JSON"),
            (b'{"title": "x", "n": Infinity}', "Infinity is not JSON"),
            (b'{"title": "x", "n": 99999999999999999999}', "out of range"),
            (b'{"title": "x", "n": 1e999}', "out of range"),
            (b"\xff\xfe", "not UTF-8"),
        ],
    )
    async def test_unusable_json_is_400_with_its_reason(self, async_client, author, body, problem):
        """Decoded by core.client_json: each of these was a 500 or reached the database."""
        _, headers = author
        response = await async_client.post(
            ARTICLES, body, content_type="application/json", headers=headers
        )
        assert response.status_code == 400
        assert problem in response.json()["detail"]
        assert await nothing_written()

    async def test_a_nul_in_a_query_parameter_is_400(self, async_client):
        response = await async_client.get(ARTICLES, {"page": "1\x00"})
        assert response.status_code == 400
        assert "NUL" in response.json()["detail"]

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"title": 5}, "title"),
            ({"title": "   "}, "title"),
            ({"title": "x" * 201}, "title"),
            ({"title": "x", "content": "x" * 50_001}, "content"),
            ({"title": "x", "published": "yes"}, "published"),
            ({"title": "x", "tags": "django"}, "tags"),
            ({"title": "x", "tags": [f"t{i}" for i in range(11)]}, "tags"),
            ({"title": "x", "tags": ["x" * 51]}, "tags"),
            ({"title": "x", "tags": [""]}, "tags"),
            ({"title": "x", "publihsed": True}, "publihsed"),
            ({}, "title"),
        ],
    )
    async def test_invalid_fields_are_422_per_field(self, async_client, author, body, field):
        _, headers = author
        response = await async_client.post(
            ARTICLES, body, content_type="application/json", headers=headers
        )
        assert response.status_code == 422
        errors = response.json()["detail"]
        assert any(field in error["loc"] and error["msg"] for error in errors), errors
        assert await nothing_written()

    @override_settings(API_MAX_BODY_BYTES=100)
    async def test_body_over_the_limit_is_413(self, author):
        # The cap is enforced by the ASGI handler, which Django's test client bypasses.
        _, headers = author
        response = await asgi_request(
            ASGIHandler(),
            "POST",
            ARTICLES,
            headers=[
                ("authorization", headers["Authorization"]),
                ("content-type", "application/json"),
            ],
            body=json.dumps({"title": "x" * 150}).encode(),
        )
        assert response.status == 413
        assert "100 bytes" in json.loads(response.body)["detail"]
        assert await nothing_written()


class TestRead:
    async def test_lists_published_articles_newest_first_with_tags(self, async_client, author):
        _, headers = author
        first = await create(async_client, headers, title="First", tags=["a"])
        await create(async_client, headers, title="Draft", published=False)
        second = await create(async_client, headers, title="Second", tags=["b", "c"])
        response = await async_client.get(ARTICLES)
        assert response.status_code == 200
        body = response.json()
        assert body["count"] == 2
        assert [item["id"] for item in body["items"]] == [second["id"], first["id"]]
        assert body["items"][0]["tags"] == ["b", "c"]

    async def test_pages_are_bounded(self, async_client, author):
        _, headers = author
        for number in range(3):
            await create(async_client, headers, title=f"Article {number}")
        page = (await async_client.get(ARTICLES, {"page_size": 2, "page": 2})).json()
        assert page["count"] == 3
        assert [item["title"] for item in page["items"]] == ["Article 0"]
        response = await async_client.get(ARTICLES, {"page": 0})
        assert response.status_code == 422

    @pytest.mark.parametrize(
        "query",
        [
            {"page": 2**63 - 1},
            {"page": 99999999999999999999},
            {"page": MAX_PAGE + 1},
            {"page_size": MAX_PAGE_SIZE + 1},
            {"page_size": 2**63},
        ],
    )
    async def test_pages_past_the_offset_bound_are_422(self, async_client, query):
        """page=9223372036854775807 was a 500: an OFFSET the database cannot hold."""
        response = await async_client.get(ARTICLES, query)
        assert response.status_code == 422
        [error] = response.json()["detail"]
        assert error["loc"] == ["query", *query]

    async def test_the_last_allowed_page_is_empty_past_the_end(self, async_client, author):
        await create(async_client, author[1])
        response = await async_client.get(ARTICLES, {"page": MAX_PAGE, "page_size": MAX_PAGE_SIZE})
        assert response.status_code == 200
        assert response.json() == {"items": [], "count": 1}

    @pytest.mark.parametrize("article_id", ["99999999999999999999", str(2**63), "0"])
    async def test_ids_outside_the_id_range_are_422(self, async_client, author, article_id):
        url = f"{ARTICLES}{article_id}/"
        for response in (
            await async_client.get(url),
            await async_client.delete(url, headers=author[1]),
            await async_client.patch(url, {}, content_type="application/json", headers=author[1]),
        ):
            assert response.status_code == 422
            assert response.json()["detail"][0]["loc"] == ["path", "article_id"]

    @pytest.mark.parametrize("path", ["abc/", "1.5/", "-1/", "1/extra/", "nothing"])
    async def test_paths_the_api_does_not_have_are_404_json(self, async_client, path):
        response = await async_client.get(f"{ARTICLES}{path}")
        assert response.status_code == 404
        assert response["Content-Type"] == "application/json"
        assert response.json() == {"detail": "Not Found"}

    async def test_detail(self, async_client, author):
        _, headers = author
        created = await create(async_client, headers, tags=["django"])
        response = await async_client.get(article_url(created["id"]))
        assert response.status_code == 200
        assert response.json() == created

    async def test_unknown_article_is_404_json(self, async_client):
        response = await async_client.get(article_url(999_999))
        assert response.status_code == 404
        assert response.json()["detail"].startswith("Not Found")

    async def test_a_draft_is_visible_to_its_author_only(self, async_client, author, other):
        _, headers = author
        draft = await create(async_client, headers, published=False)
        assert (await async_client.get(article_url(draft["id"]))).status_code == 404
        response = await async_client.get(article_url(draft["id"]), headers=other[1])
        assert response.status_code == 404
        response = await async_client.get(article_url(draft["id"]), headers=headers)
        assert response.status_code == 200

    async def test_stats_are_counted_by_the_database(self, async_client, author):
        _, headers = author
        await create(async_client, headers, tags=["django", "orm"])
        await create(async_client, headers, tags=["django"], published=False)
        await create(async_client, headers)
        response = await async_client.get(f"{ARTICLES}stats/")
        assert response.status_code == 200
        assert response.json() == {"total": 3, "published": 2, "by_tag": {"django": 2, "orm": 1}}


class TestChange:
    async def test_author_patches_only_the_fields_sent(self, async_client, author):
        _, headers = author
        created = await create(async_client, headers, content="Keep me", tags=["old"])
        response = await async_client.patch(
            article_url(created["id"]),
            {"title": "New title", "tags": ["new", "newer"]},
            content_type="application/json",
            headers=headers,
        )
        assert response.status_code == 200
        body = response.json()
        assert body["title"] == "New title"
        assert body["content"] == "Keep me"
        assert body["tags"] == ["new", "newer"]

    async def test_someone_else_may_not_patch_or_delete(self, async_client, author, other):
        created = await create(async_client, author[1])
        url = article_url(created["id"])
        response = await async_client.patch(
            url, {"title": "Mine now"}, content_type="application/json", headers=other[1]
        )
        assert response.status_code == 403
        assert response.json()["detail"] == "Only the author may change this article."
        assert (await async_client.delete(url, headers=other[1])).status_code == 403
        assert (await Article.objects.aget(pk=created["id"])).title == "Hello"

    async def test_patch_refuses_null_and_bad_types(self, async_client, author):
        _, headers = author
        created = await create(async_client, headers)
        for body in ({"title": None}, {"published": "no"}, {"tags": None}):
            response = await async_client.patch(
                article_url(created["id"]), body, content_type="application/json", headers=headers
            )
            assert response.status_code == 422, body

    async def test_changes_need_a_token(self, async_client, author):
        created = await create(async_client, author[1])
        url = article_url(created["id"])
        response = await async_client.patch(url, {}, content_type="application/json")
        assert response.status_code == 401
        assert (await async_client.delete(url)).status_code == 401

    async def test_unknown_article_is_404(self, async_client, author):
        _, headers = author
        response = await async_client.delete(article_url(999_999), headers=headers)
        assert response.status_code == 404

    async def test_one_or_more_spaces_after_bearer_work_everywhere(self, async_client, author):
        """RFC 9110 allows 1*SP; django-ninja's HttpBearer split on a single space."""
        _, headers = author
        spaced = {"Authorization": headers["Authorization"].replace(" ", "  ", 1)}
        created = await create(async_client, spaced)
        url = article_url(created["id"])
        patched = await async_client.patch(
            url, {"title": "New"}, content_type="application/json", headers=spaced
        )
        assert patched.status_code == 200
        assert (await async_client.get(url, headers=spaced)).status_code == 200
        assert (await async_client.delete(url, headers=spaced)).status_code == 204

    async def test_author_deletes(self, async_client, author):
        _, headers = author
        created = await create(async_client, headers)
        response = await async_client.delete(article_url(created["id"]), headers=headers)
        assert response.status_code == 204
        assert (await async_client.get(article_url(created["id"]))).status_code == 404


DOCS = ["/api/openapi.json", "/api/docs"]


class TestDocs:
    @pytest.fixture(autouse=True)
    def api_docs(self, settings):
        settings.API_DOCS = True

    async def test_openapi_document_lists_the_routes(self, async_client):
        response = await async_client.get("/api/openapi.json")
        assert response.status_code == 200
        paths = response.json()["paths"]
        assert {"/api/articles/", "/api/articles/{article_id}/", "/api/articles/stats/"} <= set(
            paths
        )

    @pytest.mark.parametrize("path", DOCS)
    @pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "TRACE"])
    async def test_the_docs_answer_only_get_and_head(self, async_client, path, method):
        response = await async_client.generic(method, path)
        assert response.status_code == 405
        assert response["Allow"] == "GET, HEAD"
        assert response.json() == {"detail": "Method not allowed."}
        assert (await async_client.head(path)).status_code == 200

    async def test_interactive_docs_load_scripts_from_this_site(self, async_client):
        response = await async_client.get("/api/docs")
        assert response.status_code == 200
        html = response.content.decode()
        assert '<script src="/static/ninja/swagger-ui-bundle.js">' in html
        assert "script-src 'self'" in response["Content-Security-Policy"]

    async def test_the_home_page_links_the_docs(self, async_client):
        assert 'href="/api/docs"' in (await async_client.get("/")).content.decode()


class TestDocsOff:
    """API_DOCS off (the default without DEBUG): the API's map is not published."""

    @pytest.fixture(autouse=True)
    def api_docs(self, settings):
        settings.API_DOCS = False

    @pytest.mark.parametrize("path", DOCS)
    @pytest.mark.parametrize("method", ["GET", "HEAD", "POST", "OPTIONS"])
    async def test_the_public_gets_404(self, async_client, path, method):
        response = await async_client.generic(method, path, headers={"Accept": "application/json"})
        assert response.status_code == 404
        if method != "HEAD":
            assert response.json() == {"detail": "Not Found"}

    @pytest.mark.parametrize("path", DOCS)
    async def test_a_user_who_is_not_staff_gets_404(self, async_client, author, path):
        user, _ = author
        await async_client.aforce_login(user)
        assert (await async_client.get(path)).status_code == 404

    @pytest.mark.parametrize("path", DOCS)
    async def test_signed_in_staff_read_them(self, async_client, author, path):
        user, _ = author
        user.is_staff = True
        await user.asave(update_fields=["is_staff"])
        await async_client.aforce_login(user)
        assert (await async_client.get(path)).status_code == 200

    async def test_the_home_page_does_not_link_them(self, async_client):
        assert 'href="/api/docs"' not in (await async_client.get("/")).content.decode()

    @pytest.mark.parametrize("debug", [False, True])
    def test_the_default_follows_debug(self, debug):
        with mock.patch.dict(os.environ):
            os.environ.pop("API_DOCS", None)
            defined = read_settings(DJANGO_DEBUG=str(debug), DJANGO_SECRET_KEY=PRODUCTION_KEY)
        assert defined["API_DOCS"] is debug


@pytest.mark.parametrize("debug", [False, True])
async def test_a_database_outage_answers_503_json(async_client, author, debug, settings):
    """With DEBUG on, django-ninja answered its own plain-text traceback 500."""
    settings.DEBUG = debug
    _, headers = author
    with database_down():
        listed = await async_client.get(ARTICLES)
        created = await async_client.post(
            ARTICLES,
            {"title": "t", "content": "c"},
            content_type="application/json",
            headers=headers,
        )
    for response in (listed, created):
        assert response.status_code == 503
        assert response.json() == {"detail": "The database is unavailable; retry shortly."}
    assert (await async_client.get(ARTICLES)).status_code == 200
