import pytest
from django.db import IntegrityError

from articles.models import Article, Tag

from ..transactions import create_article

pytestmark = pytest.mark.django_db(transaction=True)


async def test_create_article_writes_the_article_and_its_tags(author):
    await Tag.objects.acreate(name="django")

    article = await create_article(author, "Hello", ["django", "asgi"])

    names = [name async for name in article.tags.order_by("name").values_list("name", flat=True)]
    assert names == ["asgi", "django"]


async def test_a_failure_inside_the_unit_rolls_back_everything(author):
    # The article and the tag "asgi" are written before the NULL name fails.
    with pytest.raises(IntegrityError):
        await create_article(author, "Doomed", ["asgi", None])

    assert await Article.objects.acount() == 0
    assert await Tag.objects.acount() == 0
