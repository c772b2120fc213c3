from django.apps import AppConfig
from django.conf import settings


class ArticlesConfig(AppConfig):
    name = "articles"
    verbose_name = "Articles API"
    # Listed on the home page (core.views.home).
    summary = "An async JSON API on the async ORM: articles, tags and database-counted stats."

    @property
    def home_link(self) -> tuple[str, str] | None:
        # No link to docs the public gets a 404 for (settings.API_DOCS off).
        return ("API docs", "api:openapi-view") if settings.API_DOCS else None
