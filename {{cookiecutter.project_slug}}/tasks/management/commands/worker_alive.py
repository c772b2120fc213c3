"""manage.py worker_alive: a health check for a container or host that runs `manage.py worker`."""

import socket
from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError
from django.utils import timezone

from tasks.models import WorkerHeartbeat


def positive_float(value: str) -> float:
    number = float(value)
    if not number > 0:  # also refuses nan
        raise ValueError(value)
    return number


class Command(BaseCommand):
    help = (
        "Exit 0 when a worker on this host (a container: its own worker) recorded a heartbeat "
        "within --max-age seconds, 1 when none did or the database cannot say."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--max-age",
            type=positive_float,
            help=(
                "Seconds (default: three heartbeats, 3 x TASKS_HEARTBEAT_SECONDS, at most "
                "TASKS_WORKER_LOST_SECONDS, after which other workers requeue its tasks)."
            ),
        )

    def handle(self, *, max_age, **options):
        if max_age is None:
            max_age = min(3 * settings.TASKS_HEARTBEAT_SECONDS, settings.TASKS_WORKER_LOST_SECONDS)
        # The name the worker recorded (tasks.worker.Worker._heartbeat).
        hostname = socket.gethostname()[:255]
        cutoff = timezone.now() - timedelta(seconds=max_age)
        try:
            seen = (
                WorkerHeartbeat.objects.filter(hostname=hostname, last_seen__gte=cutoff)
                .order_by("-last_seen")
                .first()
            )
        except DatabaseError as exc:
            raise CommandError(f"Cannot read the workers' heartbeats: {exc}") from None
        if seen is None:
            raise CommandError(f"No worker on {hostname} recorded a heartbeat in {max_age:g} s.")
        ago = (timezone.now() - seen.last_seen).total_seconds()
        self.stdout.write(
            f"Worker {seen.worker_id} (pid {seen.pid}) seen {ago:.1f} s ago, "
            f"running {seen.running} tasks."
        )
