from django.apps import AppConfig


class ArticlesConfig(AppConfig):
    name = "articles"
    verbose_name = "Articles API"
    # Listed on the home page (core.views.home).
    summary = "An async JSON API on the async ORM: articles, tags and database-counted stats."
    home_link = ("API docs", "api:openapi-view")
