"""What the worker and the example task keep beside django-tasks-db's queue (DBTaskResult)."""

from django.db import models
from django_tasks_db.models import DBTaskResult


class WorkerHeartbeat(models.Model):
    """A running `manage.py worker`, as last seen: it writes this row every TASKS_HEARTBEAT_SECONDS.

    A worker not seen for TASKS_WORKER_LOST_SECONDS is lost; the tasks it was
    running are recovered by another worker (tasks.worker.recover_lost).
    """

    worker_id = models.CharField(max_length=64, primary_key=True)
    hostname = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    last_seen = models.DateTimeField(db_index=True)
    running = models.PositiveIntegerField(default=0)  # tasks in progress at last_seen

    def __str__(self) -> str:
        return f"{self.worker_id} ({self.hostname}:{self.pid})"


class TaskProgress(models.Model):
    """The latest progress a running task reported (tasks.progress.report).

    Kept in the database so that GET /tasks/<id>/ shows it from any process,
    and the web process can relay it as events when the broker cannot carry
    them from the worker. Deleted with its task's result.
    """

    result = models.OneToOneField(
        DBTaskResult, on_delete=models.CASCADE, primary_key=True, related_name="progress"
    )
    done = models.PositiveIntegerField()
    total = models.PositiveIntegerField()
    message = models.CharField(max_length=200, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.done}/{self.total} {self.message}"

    def as_dict(self) -> dict:
        return {"done": self.done, "total": self.total, "message": self.message}


class Survey(models.Model):
    """What one run of the example task (tasks.tasks.survey) found, one entry per check."""

    result = models.OneToOneField(DBTaskResult, on_delete=models.CASCADE, related_name="survey")
    checks = models.JSONField()  # {name: {"ok": bool, "ms": float, "error"?: str}}
    ok = models.BooleanField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"survey {self.result_id}: {'ok' if self.ok else 'failing'}"
