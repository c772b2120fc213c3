"""Query counts, through the sync test client.

Under the sync client Django runs the async view's ORM calls back on this
thread, so pytest-django's query counter sees them. (Under AsyncClient they
would run on asgiref's worker thread, on another connection.)
"""

import pytest
from django.contrib.auth import get_user_model

from articles.models import Article, Tag

pytestmark = pytest.mark.django_db


def make_articles(count: int, tags_each: int) -> None:
    author, _ = get_user_model().objects.get_or_create(username="ada")
    tags = [Tag.objects.get_or_create(name=f"tag{n}")[0] for n in range(tags_each)]
    for number in range(count):
        article = Article.objects.create(author=author, title=f"A{number}", published=True)
        article.tags.set(tags)


@pytest.mark.parametrize(("articles", "tags_each"), [(1, 1), (20, 5)])
def test_a_page_costs_three_queries_whatever_its_size(
    client, django_assert_num_queries, articles, tags_each
):
    make_articles(articles, tags_each)
    # count, the page of articles with their authors, the page's tags
    with django_assert_num_queries(3):
        response = client.get("/api/articles/")
    assert response.status_code == 200
    assert len(response.json()["items"]) == articles
    assert all(len(item["tags"]) == tags_each for item in response.json()["items"])


def test_stats_cost_two_queries(client, django_assert_num_queries):
    make_articles(5, 3)
    with django_assert_num_queries(2):
        response = client.get("/api/articles/stats/")
    assert response.json()["by_tag"] == {"tag0": 5, "tag1": 5, "tag2": 5}
