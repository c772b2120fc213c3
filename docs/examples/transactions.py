"""Transactions: one sync function per atomic unit, called once from async code."""

from asgiref.sync import sync_to_async
from django.db import transaction

from articles.models import Article, Tag


# --8<-- [start:atomic]
@transaction.atomic
def create_article_with_tags(author, title: str, tag_names: list[str]) -> Article:
    article = Article.objects.create(author=author, title=title, content="")
    tags = [Tag.objects.get_or_create(name=name)[0] for name in tag_names]
    article.tags.add(*tags)
    return article


async def create_article(author, title: str, tag_names: list[str]) -> Article:
    # The whole transaction runs in one hop, on the thread (and connection)
    # that every other ORM call of this request uses.
    return await sync_to_async(create_article_with_tags)(author, title, tag_names)


# --8<-- [end:atomic]
