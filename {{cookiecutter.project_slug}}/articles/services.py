"""Writes that must be atomic.

Django 6.1 has no async transactions (`transaction.atomic` is sync only), so
each transactional unit is one sync function that async views call through a
single `sync_to_async`: one thread hop for the whole unit, on the request's
database connection.
"""

from django.db import transaction

from articles.models import Article, Tag


def set_tags(article: Article, names: list[str]) -> None:
    """Replace the article's tags, creating missing ones: a constant number of queries."""
    names = sorted(set(names))
    Tag.objects.bulk_create([Tag(name=name) for name in names], ignore_conflicts=True)
    article.tags.set(Tag.objects.filter(name__in=names))


@transaction.atomic
def create_article(author, *, title: str, content: str, published: bool, tags: list[str]):
    article = Article.objects.create(
        author=author, title=title, content=content, published=published
    )
    set_tags(article, tags)
    return Article.objects.with_related().get(pk=article.pk)


@transaction.atomic
def update_article(article_id: int, changes: dict):
    """Apply `changes` (fields, and `tags` if given) to the article, locked for the update."""
    article = Article.objects.select_for_update().get(pk=article_id)
    tags = changes.pop("tags", None)
    for field, value in changes.items():
        setattr(article, field, value)
    article.save()
    if tags is not None:
        set_tags(article, tags)
    return Article.objects.with_related().get(pk=article.pk)
