from django.apps import AppConfig


class UpstreamsConfig(AppConfig):
    name = "upstreams"
    verbose_name = "Outbound HTTP"

    def ready(self):
        from upstreams import checks  # noqa: F401 (registers the system check)
