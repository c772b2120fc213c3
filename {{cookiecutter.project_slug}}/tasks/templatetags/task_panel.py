"""What the home page's tasks panel (tasks/panel.html) needs to know of the project's URLs."""

from uuid import UUID

from django import template
from django.urls import reverse

from tasks.progress import events_mode

register = template.Library()


@register.simple_tag
def task_events_url() -> str:
    """The path of GET /events/ when task progress is published there, else "".

    Progress events exist only with Server-Sent Events (settings.TASKS_PROGRESS_EVENTS);
    without them the panel says how to poll instead.
    """
    return reverse("events:stream") if events_mode() else ""


@register.simple_tag
def task_detail_url() -> str:
    """The path of GET /tasks/<id>/ with the literal placeholder `<id>` in place of an id."""
    placeholder = str(UUID(int=0))
    return reverse("tasks:detail", args=[placeholder]).replace(placeholder, "<id>")
