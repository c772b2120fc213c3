from django.apps import AppConfig


class FilesConfig(AppConfig):
    name = "files"
    verbose_name = "File streaming"
    # Listed on the home page (core.views.home).
    summary = "GET /files/<path> streams a file from DJANGO_MEDIA_ROOT, with ETag, 304 and 412."
