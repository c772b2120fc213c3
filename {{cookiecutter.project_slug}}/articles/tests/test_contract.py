"""The API's HTTP semantics and its published contract, /api/openapi.json."""

from unittest import mock

import pytest
from django.test import AsyncClient

from articles.models import Article
from core.client_json import MAX_INTEGER

pytestmark = pytest.mark.django_db(transaction=True)

ARTICLES = "/api/articles/"


@pytest.fixture(autouse=True)
def api_docs(settings):
    """The published contract is read from /api/openapi.json, off by default without DEBUG."""
    settings.API_DOCS = True


@pytest.fixture
async def article(author):
    user, _ = author
    return await Article.objects.acreate(author=user, title="Hello", published=True)


async def openapi(async_client) -> dict:
    response = await async_client.get("/api/openapi.json")
    assert response.status_code == 200
    return response.json()


class TestHead:
    async def test_head_answers_wherever_get_does(self, async_client, article):
        for path in (ARTICLES, f"{ARTICLES}stats/", f"{ARTICLES}{article.pk}/"):
            get = await async_client.get(path)
            head = await async_client.head(path)
            assert head.status_code == get.status_code == 200, path
            assert head["Content-Type"] == get["Content-Type"]
            assert head.content == b""

    async def test_head_is_not_in_the_openapi_document(self, async_client):
        assert not any("head" in path for path in (await openapi(async_client))["paths"].values())


async def test_a_method_not_allowed_is_405_json_with_allow(async_client, article):
    for path, allowed in (
        (ARTICLES, "GET, HEAD, POST"),
        (f"{ARTICLES}{article.pk}/", "DELETE, GET, HEAD, PATCH"),
    ):
        response = await async_client.put(path, {}, content_type="application/json")
        assert response.status_code == 405
        assert response["Allow"] == allowed
        assert response.json() == {"detail": "Method not allowed."}


class TestUnexpectedErrors:
    """An exception no handler claims reaches Django's middleware and handler500."""

    @pytest.fixture
    def failing_query(self):
        with mock.patch.object(Article.objects, "with_related", side_effect=RuntimeError("bug")):
            yield

    async def test_debug_off_answers_json_500(self, failing_query, article):
        client = AsyncClient(raise_request_exception=False)
        response = await client.get(f"{ARTICLES}{article.pk}/")
        assert response.status_code == 500
        assert response.json() == {"detail": "Internal server error."}

    async def test_debug_on_raises_to_django_not_a_ninja_traceback(
        self, failing_query, article, settings
    ):
        settings.DEBUG = True
        with pytest.raises(RuntimeError, match="bug"):
            await AsyncClient().get(f"{ARTICLES}{article.pk}/")


class TestOpenAPI:
    async def test_every_operation_documents_its_error_answers(self, async_client):
        paths = (await openapi(async_client))["paths"]
        documented = {
            (path, method): set(operation["responses"])
            for path, methods in paths.items()
            for method, operation in methods.items()
        }
        item = "/api/articles/{article_id}/"
        assert {"400", "401", "413", "422", "503"} <= documented[("/api/articles/", "post")]
        assert {"400", "422", "503"} <= documented[("/api/articles/", "get")]
        assert {"404", "422", "503"} <= documented[(item, "get")]
        assert {"400", "401", "403", "404", "413", "422", "503"} <= documented[(item, "patch")]
        assert {"401", "403", "404", "422", "503"} <= documented[(item, "delete")]
        assert {"503"} <= documented[("/api/articles/stats/", "get")]

    async def test_every_integer_parameter_is_bounded(self, async_client):
        """A parameter with no maximum can carry a value the database cannot hold."""
        for methods in (await openapi(async_client))["paths"].values():
            for operation in methods.values():
                for parameter in operation["parameters"]:
                    schema = parameter["schema"]
                    schema = next(iter(schema.get("anyOf", [])), schema)
                    if schema.get("type") == "integer":
                        assert 0 < schema["maximum"] <= MAX_INTEGER, parameter

    async def test_patch_fields_are_not_nullable(self, async_client):
        schemas = (await openapi(async_client))["components"]["schemas"]
        for name, field in schemas["ArticlePatch"]["properties"].items():
            assert "anyOf" not in field and field.get("type") != "null", name
            assert "default" not in field, name

    @pytest.mark.parametrize("schema", ["ArticleIn", "ArticlePatch"])
    async def test_a_title_needs_a_visible_character_in_the_schema(self, async_client, schema):
        """The title is stripped before its checks; the pattern says so to a generator."""
        schemas = (await openapi(async_client))["components"]["schemas"]
        title = schemas[schema]["properties"]["title"]
        assert title["pattern"] == r"^[^\x00]*[^\x00\t\n\x0b\x0c\r ][^\x00]*$"
        assert title["maxLength"] == 200
