"""`manage.py worker`: its arguments, and a run that stops after --max-tasks."""

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django_tasks_db.models import DBTaskResult

from tasks.tests import jobs


@pytest.mark.parametrize("value", ["0", "-1", "many", "1.5"])
@pytest.mark.parametrize("option", ["--concurrency", "--max-tasks"])
def test_a_count_that_is_not_a_positive_integer_is_refused(option, value):
    with pytest.raises(CommandError, match=f"argument {option}: invalid positive_int value"):
        call_command("worker", option, value)


def test_an_unknown_backend_is_refused():
    with pytest.raises(CommandError, match="nowhere"):
        call_command("worker", "--backend", "nowhere")


def test_a_backend_that_is_not_the_database_one_is_refused(settings):
    settings.TASKS = {
        **settings.TASKS,
        "immediate": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"},
    }
    with pytest.raises(CommandError, match="not django-tasks-db's DatabaseBackend"):
        call_command("worker", "--backend", "immediate")


@pytest.mark.django_db(transaction=True)
def test_the_command_runs_tasks_of_its_queues_and_stops_after_max_tasks(settings):
    settings.TASKS = {"default": {**settings.TASKS["default"], "QUEUES": ["default", "other"]}}
    other = jobs.add.using(queue_name="other").enqueue(1, 1)
    results = [jobs.add.enqueue(n, n) for n in range(3)]
    call_command("worker", "--max-tasks", "2", "--concurrency", "1", "--queue-name", "default")
    statuses = [DBTaskResult.objects.get(id=r.id).status for r in results]
    assert statuses == ["SUCCESSFUL", "SUCCESSFUL", "READY"]
    assert DBTaskResult.objects.get(id=other.id).status == "READY"
