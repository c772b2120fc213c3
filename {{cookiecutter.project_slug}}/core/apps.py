from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Core"

    def ready(self):
        from core.checks import recognise_middleware_subclasses

        recognise_middleware_subclasses()
