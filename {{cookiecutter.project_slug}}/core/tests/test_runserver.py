"""`manage.py runserver` serves config.asgi:application with uvicorn, as Django's arguments ask."""

from types import SimpleNamespace
from unittest import mock

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command, get_commands
from uvicorn.importer import import_from_string

from config.asgi import application
from core.management.commands import runserver

ALL_INTERFACES = "0.0.0.0"  # noqa: S104 (what the tests ask for)


@pytest.fixture
def served():
    """uvicorn.run, recorded instead of serving; no migration check (no database here)."""
    with (
        mock.patch.object(runserver.uvicorn, "run") as run,
        mock.patch.object(runserver.Command, "check_migrations"),
    ):
        yield run


def serve(*args: str) -> dict:
    """Run the command with `args`; the keyword arguments it gave uvicorn.run."""
    call_command(runserver.Command(), *args, "--skip-checks")
    run = runserver.uvicorn.run
    run.assert_called_once()
    assert run.call_args.args == (runserver.APPLICATION,)
    return run.call_args.kwargs


def test_manage_py_runserver_is_this_command_not_djangos_wsgi_server():
    # Django runs the command of the first app in INSTALLED_APPS that has one.
    assert get_commands()["runserver"] == "core"


def test_the_application_served_is_the_projects():
    assert import_from_string(runserver.APPLICATION) is application


def test_by_default_it_serves_loopback_port_8000_and_reloads_on_changes_in_the_project(served):
    options = serve()
    assert (options["host"], options["port"]) == ("127.0.0.1", 8000)
    assert options["reload"] is True
    assert options["reload_dirs"] == [str(settings.BASE_DIR)]
    # Templates too: the cached template loader never sees them change.
    assert "*.html" in options["reload_includes"]
    assert options["http"] == "core.protocol:HttpToolsProtocol"
    assert options["timeout_graceful_shutdown"] > 0


@pytest.mark.parametrize(
    ("args", "host", "port"),
    [
        (["8001"], "127.0.0.1", 8001),
        (["0.0.0.0:9000"], ALL_INTERFACES, 9000),
        (["0:9000"], ALL_INTERFACES, 9000),
        (["localhost:8002"], "localhost", 8002),
        (["[::1]:8000"], "::1", 8000),
        (["--ipv6"], "::1", 8000),
        (["-6", "8003"], "::1", 8003),
    ],
)
def test_the_address_is_read_as_django_reads_it(served, args, host, port):
    options = serve(*args)
    assert (options["host"], options["port"]) == (host, port)


def test_noreload_serves_in_this_process_without_watching(served):
    options = serve("--noreload", "8001")
    assert options["reload"] is False
    assert "reload_dirs" not in options
    assert "reload_includes" not in options


@pytest.mark.parametrize("addrport", ["nonsense:port", "8000:1.2.3.4", "[::1]"])
def test_a_bad_address_is_refused_before_serving(served, addrport):
    with pytest.raises(CommandError, match="not a valid port number"):
        call_command(runserver.Command(), addrport, "--skip-checks")
    served.assert_not_called()


def test_the_banner_says_what_serves_and_where(served, capsys):
    serve("[::1]:8001")
    out = capsys.readouterr().out
    assert "Starting ASGI development server (uvicorn, auto-reload) at http://[::1]:8001/" in out
    assert "WSGI" not in out


def test_an_app_adds_its_uvicorn_options_and_without_one_there_are_no_websockets():
    rooms = SimpleNamespace(uvicorn_options={"ws": "rooms.protocol:Protocol", "ws_max_size": 9})
    with mock.patch.object(runserver.apps, "get_app_configs", return_value=[SimpleNamespace()]):
        # As `--ws none` in the README's serve command.
        assert runserver.uvicorn_options()["ws"] == "none"
    with mock.patch.object(
        runserver.apps, "get_app_configs", return_value=[SimpleNamespace(), rooms]
    ):
        assert runserver.uvicorn_options() == {
            "http": "core.protocol:HttpToolsProtocol",
            "ws": "rooms.protocol:Protocol",
            "ws_max_size": 9,
        }


@pytest.mark.django_db(transaction=True)
def test_system_checks_and_the_migration_check_run_before_serving(capsys):
    # transaction=True: the command closes the database connections before serving.
    steps = []
    check_migrations = runserver.Command.check_migrations

    def checking_migrations(command):
        steps.append("migration check")
        check_migrations(command)

    def serving(*args, **kwargs):
        steps.append(capsys.readouterr().out)

    with (
        mock.patch.object(runserver.Command, "check_migrations", checking_migrations),
        mock.patch.object(runserver.uvicorn, "run", serving),
    ):
        # call_command() skips the checks unless told not to; manage.py runs them.
        call_command(runserver.Command(), skip_checks=False)
    migration_check, printed_before_serving = steps
    assert migration_check == "migration check"
    assert "System check identified no issues" in printed_before_serving
