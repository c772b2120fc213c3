from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"
    # The home page's title.
    verbose_name = {{cookiecutter.project_name | python_string}}

    def ready(self):
        from core import login_throttle  # noqa: F401 (connects its user_login_failed receiver)
        from core.checks import recognise_middleware_subclasses

        recognise_middleware_subclasses()
