"""manage.py worker_alive: the worker container's health check (compose.yaml's `worker`)."""

import socket

import pytest
from django.core.management import CommandError, call_command

from core.testing import database_down
from tasks.tests import conftest

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def beats(settings):
    """The defaults: a heartbeat every 5 s, lost after 60 s; so 15 s is recent."""
    settings.TASKS_HEARTBEAT_SECONDS = 5
    settings.TASKS_WORKER_LOST_SECONDS = 60


def heartbeat(worker_id: str, seconds_ago: float, hostname: str | None = None) -> None:
    """A heartbeat from this host unless `hostname` says another."""
    conftest.heartbeat(worker_id, seconds_ago, hostname or socket.gethostname())


def test_a_recent_heartbeat_of_this_host_is_alive(capsys):
    heartbeat("old", seconds_ago=3600)
    heartbeat("recent", seconds_ago=1)
    call_command("worker_alive")
    assert capsys.readouterr().out.startswith("Worker recent (pid 7) seen ")


def test_no_heartbeat_is_not_alive():
    with pytest.raises(CommandError, match=r"No worker on .* recorded a heartbeat in 15 s\."):
        call_command("worker_alive")


def test_a_heartbeat_older_than_three_beats_is_not_alive():
    heartbeat("stalled", seconds_ago=20)
    with pytest.raises(CommandError, match="in 15 s"):
        call_command("worker_alive")
    call_command("worker_alive", "--max-age", "30")


def test_never_beyond_the_time_a_worker_is_lost_after(settings):
    settings.TASKS_HEARTBEAT_SECONDS = 60
    settings.TASKS_WORKER_LOST_SECONDS = 30
    heartbeat("lost", seconds_ago=40)
    with pytest.raises(CommandError, match="in 30 s"):
        call_command("worker_alive")


def test_another_host_s_worker_does_not_count():
    """Each container checks its own worker: another one's heartbeat says nothing of it."""
    heartbeat("elsewhere", seconds_ago=0, hostname="another-host")
    with pytest.raises(CommandError, match="No worker"):
        call_command("worker_alive")


def test_the_database_down_is_not_alive():
    heartbeat("recent", seconds_ago=0)
    with database_down(), pytest.raises(CommandError, match="Cannot read the workers' heartbeats"):
        call_command("worker_alive")


@pytest.mark.parametrize("max_age", ["0", "-1", "nan", "soon"])
def test_a_bad_max_age_is_refused(max_age):
    with pytest.raises(CommandError, match="--max-age"):
        call_command("worker_alive", "--max-age", max_age)
