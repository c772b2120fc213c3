import pytest
from django.contrib.auth import get_user_model

from articles.models import Article, Tag


@pytest.fixture
async def author():
    return await get_user_model().objects.acreate(username="ada")


@pytest.fixture
async def article(author):
    article = await Article.objects.acreate(
        author=author, title="Async Django", content="...", published=True
    )
    await article.tags.aadd(await Tag.objects.acreate(name="django"))
    return article
