from unittest import mock

import pytest

from articles import services
from articles.models import Article, Tag

pytestmark = pytest.mark.django_db(transaction=True)


async def test_a_failure_after_the_article_is_written_saves_nothing(async_client, author):
    _, headers = author
    real_set_tags = services.set_tags

    def set_tags_then_fail(article, names):
        real_set_tags(article, names)  # the article row and its tags are written...
        assert Article.objects.filter(pk=article.pk, tags__name="django").exists()
        raise RuntimeError("storage failed")  # ...and then the transaction fails

    with (
        mock.patch.object(services, "set_tags", set_tags_then_fail),
        pytest.raises(RuntimeError, match="storage failed"),
    ):
        await async_client.post(
            "/api/articles/",
            {"title": "Doomed", "tags": ["django"]},
            content_type="application/json",
            headers=headers,
        )
    assert await Article.objects.acount() == 0
    assert await Tag.objects.acount() == 0
