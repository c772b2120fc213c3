from django.apps import AppConfig


class UpstreamsConfig(AppConfig):
    name = "upstreams"
    verbose_name = "Outbound HTTP"
    # Listed on the home page (core.views.home).
    summary = "One pooled httpx client with retries; the dashboard calls every source at once."
    home_link = ("Dashboard", "dashboard")

    def ready(self):
        from upstreams import checks  # noqa: F401 (registers the system check)
