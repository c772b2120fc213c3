import asyncio

from django.core.management.base import BaseCommand, CommandError
from django.tasks import InvalidTaskBackend, task_backends
from django_tasks_db.backend import DatabaseBackend

from tasks.worker import Worker


def positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError(value)
    return number


class Command(BaseCommand):
    help = (
        "Run background tasks: many at once, on one event loop (tasks/worker.py). "
        "SIGTERM lets running tasks finish; a second signal puts them back in the queue."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--queue-name",
            default="default",
            help="Queues to run, comma-separated; * for all (default: %(default)s).",
        )
        parser.add_argument(
            "--concurrency",
            type=positive_int,
            help="Tasks at once (default: TASKS_WORKER_CONCURRENCY).",
        )
        parser.add_argument(
            "--backend", default="default", help="The TASKS backend (default: %(default)s)."
        )
        parser.add_argument(
            "--max-tasks",
            type=positive_int,
            help="Exit after running this many tasks (a worker that restarts to free memory).",
        )

    def handle(self, *, queue_name, concurrency, backend, max_tasks, **options):
        try:
            configured = task_backends[backend]
        except InvalidTaskBackend as exc:
            raise CommandError(str(exc)) from None
        if not isinstance(configured, DatabaseBackend):
            raise CommandError(f"Backend {backend!r} is not django-tasks-db's DatabaseBackend.")
        queues = None if queue_name.strip() == "*" else queue_name.split(",")
        worker = Worker(
            backend_name=backend, queue_names=queues, concurrency=concurrency, max_tasks=max_tasks
        )
        asyncio.run(worker.run())
