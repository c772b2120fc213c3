import asyncio
import threading

import pytest
from asgiref.sync import ThreadSensitiveContext, sync_to_async

from articles.models import Article

from .. import urls
from ..orm import article_counts, latest_titles

# Async tests that touch the database need transaction=True (see the guide's
# "Testing" section); the project's conftest.py closes their connections.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.urls(urls.__name__)]


async def test_article_detail_reads_everything_it_loaded(async_client, article):
    response = await async_client.get(f"/articles/{article.pk}/")

    assert response.status_code == 200
    assert response.json() == {"title": "Async Django", "author": "ada", "tags": ["django"]}


async def test_a_draft_is_not_found(async_client, article):
    await Article.objects.filter(pk=article.pk).aupdate(published=False)

    response = await async_client.get(f"/articles/{article.pk}/")

    assert response.status_code == 404


async def test_article_list_pages(async_client, author):
    for n in range(25):
        await Article.objects.acreate(author=author, title=f"#{n}", content="", published=True)

    first = (await async_client.get("/articles/")).json()
    last = (await async_client.get("/articles/?page=99")).json()

    assert (first["page"], first["pages"], len(first["items"])) == (1, 2, 20)
    assert first["items"][0] == {"title": "#24", "author": "ada"}
    assert (last["page"], [item["title"] for item in last["items"]]) == (
        2,
        ["#4", "#3", "#2", "#1", "#0"],
    )


async def test_latest_titles_newest_first(author):
    for title in ("first", "second", "third"):
        await Article.objects.acreate(author=author, title=title, content="", published=True)
    await Article.objects.acreate(author=author, title="draft", content="")

    assert await latest_titles(limit=2) == ["third", "second"]


async def test_article_counts(author):
    await Article.objects.acreate(author=author, title="on", content="", published=True)
    await Article.objects.acreate(author=author, title="off", content="")

    assert await article_counts() == {"total": 2, "published": 1}


async def test_two_requests_run_their_orm_calls_in_parallel():
    # Each query answers only once the other one has started: run one after
    # the other, the first would wait for the second until the barrier's timeout.
    both_started = threading.Barrier(2, timeout=5)

    def query_beside_another() -> int:
        both_started.wait()
        return Article.objects.count()

    async def request():
        async with ThreadSensitiveContext():  # what Django's ASGI handler opens per request
            return await sync_to_async(query_beside_another)()

    assert await asyncio.gather(request(), request()) == [0, 0]


async def test_whoami_anonymous(async_client):
    response = await async_client.get("/whoami/")

    assert response.status_code == 401


# --8<-- [start:test]
@pytest.mark.django_db(transaction=True)
async def test_whoami_for_a_signed_in_user(async_client, author):
    await async_client.aforce_login(author)

    response = await async_client.get("/whoami/")

    assert response.json() == {"username": "ada"}


# --8<-- [end:test]
