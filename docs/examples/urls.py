"""Routes for the examples' tests (`pytest.mark.urls`)."""

from django.urls import path

from . import orm, streaming

urlpatterns = [
    path("articles/", orm.ArticleList.as_view()),
    path("articles/<int:pk>/", orm.article_detail),
    path("whoami/", orm.whoami),
    path("live/", streaming.live),
    path("countdown/", streaming.countdown),
]
