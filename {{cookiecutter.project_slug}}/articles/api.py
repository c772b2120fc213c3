"""The articles JSON API: async django-ninja operations on the async ORM.

Reads use the async ORM directly (`aget`, async iteration, `aaggregate`);
each call is one hop to the request's sync thread, where Django runs the
query. Writes that must be atomic go through articles.services in one
`sync_to_async` call. Nothing here touches the database from the event loop.
"""

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db.models import Count, Q
from django.http import Http404
from ninja import Status
from ninja.errors import AuthenticationError, HttpError
from ninja.pagination import paginate
from ninja.security import HttpBearer

from articles import services
from articles.framework import ApiRouter, Id, ProjectAPI
from articles.models import Article, Tag
from articles.schemas import ArticleIn, ArticleOut, ArticlePatch, Message, Stats
from core.auth import INVALID, auser_from_token, bearer_token, unauthorized
from core.limits import namespace_max_body


class BearerToken(HttpBearer):
    """The project's API tokens (core.auth), read by its one parser, checked on the async path."""

    def __call__(self, request):
        # django-ninja splits the header on single spaces: `Bearer  <token>` (1*SP,
        # RFC 9110) would be refused here and accepted everywhere else.
        token = bearer_token(request)
        return None if token is None else self.authenticate(request, token)

    async def authenticate(self, request, token):
        return await auser_from_token(request, token)


api = ProjectAPI(title="API", version="1.0.0", urls_namespace="api")
# A body over API_MAX_BODY_BYTES gets 413 at the ASGI edge, before it is read.
namespace_max_body(api.urls_namespace, lambda: settings.API_MAX_BODY_BYTES)


@api.exception_handler(AuthenticationError)
def authentication_error(request, exc):
    return unauthorized(INVALID if bearer_token(request) else "Authentication required.")


router = ApiRouter(tags=["articles"])
auth = BearerToken()


async def get_article_or_404(article_id: int) -> Article:
    try:
        return await Article.objects.with_related().aget(pk=article_id)
    except Article.DoesNotExist:
        raise Http404("No such article.") from None


async def get_own_article(request, article_id: int) -> Article:
    article = await get_article_or_404(article_id)
    if article.author_id != request.auth.pk:
        raise HttpError(403, "Only the author may change this article.")
    return article


@router.get("/", response=list[ArticleOut])
@paginate
async def list_articles(request):
    """Published articles, newest first: three queries per page, whatever its size."""
    return Article.objects.with_related().filter(published=True)


@router.post("/", auth=auth, response={201: ArticleOut})
async def create_article(request, payload: ArticleIn):
    article = await sync_to_async(services.create_article)(request.auth, **payload.model_dump())
    return Status(201, article)


@router.get("/stats/", response=Stats)
async def article_stats(request):
    """Counts computed by the database: two aggregate queries."""
    counts = await Article.objects.aaggregate(
        total=Count("id"), published=Count("id", filter=Q(published=True))
    )
    tag_counts = Tag.objects.annotate(n=Count("articles")).filter(n__gt=0).values_list("name", "n")
    return {**counts, "by_tag": {name: n async for name, n in tag_counts}}


@router.get("/{int:article_id}/", response={200: ArticleOut, 404: Message})
async def get_article(request, article_id: Id):
    """A published article; a draft only for its author's token."""
    article = await get_article_or_404(article_id)
    if not article.published:
        token = bearer_token(request)
        user = await auser_from_token(request, token) if token else None
        if user is None or user.pk != article.author_id:
            raise Http404("No such article.")
    return article


@router.patch("/{int:article_id}/", auth=auth, response={200: ArticleOut, 403: Message})
async def update_article(request, article_id: Id, payload: ArticlePatch):
    await get_own_article(request, article_id)
    changes = payload.model_dump(exclude_unset=True)
    return await sync_to_async(services.update_article)(article_id, changes)


@router.delete("/{int:article_id}/", auth=auth, response={204: None, 403: Message})
async def delete_article(request, article_id: Id):
    article = await get_own_article(request, article_id)
    await article.adelete()
    return Status(204, None)


api.add_router("/articles/", router)
