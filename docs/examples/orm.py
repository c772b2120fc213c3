"""The async ORM: load everything a response needs, in as few awaits as possible."""

from django.core.paginator import AsyncPaginator
from django.db.models import Count, Q
from django.http import HttpRequest, JsonResponse
from django.shortcuts import aget_object_or_404
from django.views import View

from articles.models import Article


# --8<-- [start:detail]
async def article_detail(request: HttpRequest, pk: int) -> JsonResponse:
    # One query for the article and its author, one for its tags; nothing is
    # left to load lazily, so reading article.author below runs no query.
    article = await aget_object_or_404(
        Article.objects.select_related("author").prefetch_related("tags"),
        pk=pk,
        published=True,
    )
    return JsonResponse(
        {
            "title": article.title,
            "author": article.author.get_username(),
            "tags": [tag.name for tag in article.tags.all()],  # the prefetched list
        }
    )


# --8<-- [end:detail]


# --8<-- [start:iterate]
async def latest_titles(limit: int = 10) -> list[str]:
    # `async for` runs the query once, in a thread, and then hands out the rows.
    published = Article.objects.filter(published=True).order_by("-created_at")
    return [title async for title in published.values_list("title", flat=True)[:limit]]


# --8<-- [end:iterate]


# --8<-- [start:list-view]
class ArticleList(View):
    # Django's generic views (ListView, DetailView...) are sync only. An async
    # class-based view subclasses View and makes its handlers async.
    async def get(self, request: HttpRequest) -> JsonResponse:
        published = (
            Article.objects.filter(published=True)
            .select_related("author")
            .order_by("-created_at", "-id")
        )
        paginator = AsyncPaginator(published, per_page=20)
        # A missing, invalid or too large ?page= gives the first or last page.
        page = await paginator.aget_page(request.GET.get("page"))
        articles = await page.aget_object_list()  # runs the query
        return JsonResponse(
            {
                "page": page.number,
                "pages": await paginator.anum_pages(),
                "items": [
                    {"title": article.title, "author": article.author.get_username()}
                    for article in articles
                ],
            }
        )


# --8<-- [end:list-view]


# --8<-- [start:aggregate]
async def article_counts() -> dict[str, int]:
    # Two numbers, one query, one thread hop.
    return await Article.objects.aaggregate(
        total=Count("id"),
        published=Count("id", filter=Q(published=True)),
    )


# --8<-- [end:aggregate]


# --8<-- [start:auser]
async def whoami(request: HttpRequest) -> JsonResponse:
    # request.auser() loads the session user without blocking; request.user
    # would query the database synchronously and raise in an async view.
    user = await request.auser()
    if not user.is_authenticated:
        return JsonResponse({"detail": "Not signed in."}, status=401)
    return JsonResponse({"username": user.get_username()})


# --8<-- [end:auser]
