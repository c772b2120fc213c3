"""An async ORM read costs its queries' hops and nothing else."""

import pytest
from django.contrib.auth import get_user_model

from articles.models import Article
from core.testing import HANDLER_HOPS, request_hops


@pytest.mark.django_db(transaction=True)
@pytest.mark.project_classes
async def test_reading_an_article_costs_one_hop_for_its_query():
    author = await get_user_model().objects.acreate(username="ada")
    article = await Article.objects.acreate(author=author, title="Hops", published=True)
    hops = await request_hops(f"/api/articles/{article.pk}/")
    # One aget(): the article with its author, then its tags, in one hop.
    assert len(hops) == HANDLER_HOPS + 1, hops
