"""An async ORM read costs its queries' hops and nothing else."""

import pytest
from django.contrib.auth import get_user_model

from articles.models import Article
from config.asgi import application
from core.testing import asgi_request, count_thread_hops

HANDLER_HOPS = 2  # Django's ASGI handler: request_started receivers, response.close()


@pytest.mark.django_db(transaction=True)
async def test_reading_an_article_costs_one_hop_for_its_query():
    author = await get_user_model().objects.acreate(username="ada")
    article = await Article.objects.acreate(author=author, title="Hops", published=True)
    with count_thread_hops() as hops:
        response = await asgi_request(application, path=f"/api/articles/{article.pk}/")
    assert response.status == 200, response.body
    # One aget(): the article with its author, then its tags, in one hop.
    assert len(hops) == HANDLER_HOPS + 1, hops
