"""Common mistakes, each shown failing the way it fails in Django 6.1.

If Django changes one of these behaviours, its test fails and the guide's
"Common mistakes" section needs a look.
"""

import asyncio
import time

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.core.exceptions import SynchronousOnlyOperation
from django.db import models, transaction
from django.http import HttpRequest, JsonResponse, StreamingHttpResponse
from django.template import Context, Template
from django.urls import path

from articles.models import Article

from .test_outbound import URLS, upstream

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.urls(__name__)]


# --8<-- [start:sync-orm]
async def test_sync_orm_in_async_code_raises():
    with pytest.raises(SynchronousOnlyOperation):
        Article.objects.count()  # a sync query on the event loop: refused, not run


# --8<-- [end:sync-orm]


# --8<-- [start:lazy-fk]
async def test_lazy_foreign_key_access_raises(article):
    loaded = await Article.objects.aget(pk=article.pk)
    with pytest.raises(SynchronousOnlyOperation):
        loaded.author  # noqa: B018 (the attribute access is the query)

    # Django 6.1's fetch modes do not change that...
    peers = await Article.objects.fetch_mode(models.FETCH_PEERS).aget(pk=article.pk)
    with pytest.raises(SynchronousOnlyOperation):
        peers.author  # noqa: B018

    # ...select_related does.
    joined = await Article.objects.select_related("author").aget(pk=article.pk)
    assert joined.author.username == "ada"


# --8<-- [end:lazy-fk]


# --8<-- [start:lazy-template]
async def test_a_lazy_queryset_in_a_template_raises(article):
    template = Template("{% for a in articles %}{{ a.title }}{% endfor %}")

    with pytest.raises(SynchronousOnlyOperation):
        template.render(Context({"articles": Article.objects.all()}))

    articles = [a async for a in Article.objects.all()]  # load first, then render
    assert template.render(Context({"articles": articles})) == "Async Django"


# --8<-- [end:lazy-template]


# --8<-- [start:lazy-wrapped]
@sync_to_async
def published_articles_wrong():
    return Article.objects.filter(published=True)  # returns before the query runs


@sync_to_async
def published_articles():
    return list(Article.objects.filter(published=True))  # runs it in the thread


async def test_a_wrapped_function_must_return_results_not_a_queryset(article):
    articles = await published_articles_wrong()
    with pytest.raises(SynchronousOnlyOperation):
        [a.title for a in articles]  # the query runs here, on the event loop

    assert [a.title for a in await published_articles()] == ["Async Django"]


# --8<-- [end:lazy-wrapped]


# --8<-- [start:request-user]
async def signed_in(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"signed_in": request.user.is_authenticated})  # wrong: use auser()


urlpatterns = [path("signed-in/", signed_in)]


async def test_request_user_works_until_someone_signs_in(async_client, author):
    # Without a session cookie there is nothing to load: the bug stays hidden.
    assert (await async_client.get("/signed-in/")).json() == {"signed_in": False}

    await async_client.aforce_login(author)
    with pytest.raises(SynchronousOnlyOperation):
        await async_client.get("/signed-in/")  # loading the session user is a sync query


# --8<-- [end:request-user]


# --8<-- [start:async-atomic]
async def test_there_is_no_async_atomic():
    with pytest.raises(TypeError, match="asynchronous context manager"):
        async with transaction.atomic():
            pass


# --8<-- [end:async-atomic]


# --8<-- [start:gather-orm]
def slow_query() -> int:
    time.sleep(0.3)  # stands for a slow query; this runs in a thread, not on the loop
    return Article.objects.count()


async def test_gather_does_not_run_orm_calls_in_parallel():
    # Each Article.objects.a...() is sync_to_async(<the sync method>), like this:
    query = sync_to_async(slow_query)

    started = time.perf_counter()
    await asyncio.gather(query(), query(), query())

    # All three queued on the one thread that serves sync code for this
    # request (here: for this test), so they ran one after another.
    assert time.perf_counter() - started >= 0.9


# --8<-- [end:gather-orm]


# --8<-- [start:gather-leak]
async def test_gather_leaves_the_other_requests_running():
    cancelled = []
    async with upstream(delay=0.3, cancelled=cancelled) as client:
        others = [asyncio.ensure_future(client.get(url)) for url in URLS.values()]
        with pytest.raises(httpx.ConnectError):
            await asyncio.gather(*others, client.get("http://down.test/"))

        # The caller has its exception, but the other requests go on (and
        # would outlive the client if this `async with` ended now).
        assert not any(task.done() for task in others)
        await asyncio.gather(*others)
    assert cancelled == []


# --8<-- [end:gather-leak]


# --8<-- [start:sync-stream]
async def test_a_sync_generator_is_buffered_whole_under_asgi():
    def numbers():
        yield from (b"1", b"2", b"3")

    response = StreamingHttpResponse(numbers())
    with pytest.warns(Warning, match="must consume synchronous iterators"):
        chunks = [chunk async for chunk in response]  # what the ASGI handler does
    assert chunks == [b"1", b"2", b"3"]


# --8<-- [end:sync-stream]
