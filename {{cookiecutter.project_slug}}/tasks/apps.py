from django.apps import AppConfig


class TasksConfig(AppConfig):
    name = "tasks"
    verbose_name = "Background tasks"
    # On the home page (core.views.home): a summary and a live panel.
    summary = (
        "Django's Tasks framework on a database queue: POST /tasks/survey/ enqueues the "
        "example task, `manage.py worker` runs many at once."
    )
    home_panel = "tasks/panel.html"
