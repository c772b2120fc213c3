"""prune(): finished results past retention go, with their progress and surveys; the rest stay."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from tasks.models import Survey, TaskProgress, WorkerHeartbeat
from tasks.tests import jobs
from tasks.tests.conftest import heartbeat
from tasks.worker import prune

pytestmark = pytest.mark.django_db(transaction=True)

RETENTION_DAYS = 7


def task(status: str, finished_days_ago: float | None) -> str:
    """A task with a progress row and a survey, finished `finished_days_ago` (None: unfinished)."""
    result_id = jobs.add.enqueue(1, 1).id
    now = timezone.now()
    finished_at = None if finished_days_ago is None else now - timedelta(days=finished_days_ago)
    DBTaskResult.objects.filter(id=result_id).update(
        status=status, started_at=finished_at, finished_at=finished_at
    )
    TaskProgress.objects.create(result_id=result_id, done=1, total=1)
    Survey.objects.create(result_id=result_id, checks={}, ok=True)
    return result_id


def test_prune_deletes_old_finished_results_and_what_hangs_on_them():
    old = [task("SUCCESSFUL", RETENTION_DAYS + 1), task("FAILED", RETENTION_DAYS + 30)]
    kept = [
        task("SUCCESSFUL", RETENTION_DAYS - 1),
        task("FAILED", 0),
        task("READY", None),
        task("RUNNING", None),
    ]
    # Old, yet unfinished: a READY task waiting a long time to retry, one running for days.
    DBTaskResult.objects.filter(id__in=kept[2:]).update(
        enqueued_at=timezone.now() - timedelta(days=RETENTION_DAYS * 3)
    )
    assert prune("default", RETENTION_DAYS, lost_after=60.0) == len(old)
    assert set(DBTaskResult.objects.values_list("id", flat=True)) == set(map(_uuid, kept))
    assert set(TaskProgress.objects.values_list("result_id", flat=True)) == set(map(_uuid, kept))
    assert set(Survey.objects.values_list("result_id", flat=True)) == set(map(_uuid, kept))


def test_prune_keeps_other_backends_results():
    result_id = task("SUCCESSFUL", RETENTION_DAYS + 1)
    DBTaskResult.objects.filter(id=result_id).update(backend_name="other")
    assert prune("default", RETENTION_DAYS, lost_after=60.0) == 0
    assert DBTaskResult.objects.filter(id=result_id).exists()


def test_prune_forgets_workers_gone_for_a_day():
    for worker_id, hours_ago in (("gone", 25), ("recent", 1)):
        heartbeat(worker_id, seconds_ago=hours_ago * 3600)
    prune("default", RETENTION_DAYS, lost_after=60.0)
    assert list(WorkerHeartbeat.objects.values_list("worker_id", flat=True)) == ["recent"]


def _uuid(value: str):
    return DBTaskResult._meta.pk.to_python(value)
