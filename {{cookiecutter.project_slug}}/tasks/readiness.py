"""The /readyz check that a worker is alive (core.readiness runs it)."""

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from core.readiness import CheckFailed
from tasks.models import WorkerHeartbeat


class NoWorker(CheckFailed):
    """No worker has recorded a heartbeat within TASKS_WORKER_LOST_SECONDS."""


async def worker() -> None:
    """Raise NoWorker unless some worker was seen within TASKS_WORKER_LOST_SECONDS."""
    cutoff = timezone.now() - timedelta(seconds=settings.TASKS_WORKER_LOST_SECONDS)
    if not await WorkerHeartbeat.objects.filter(last_seen__gte=cutoff).aexists():
        raise NoWorker("no worker seen recently: run `manage.py worker`")
