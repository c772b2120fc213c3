"""core.postgresql: while the server is down a query fails at once; it serves again at once.

The server is reached through a TCP proxy that these tests kill (the port
refuses connections and every open one is cut, as when PostgreSQL dies) and
start again on the same port (as when it restarts).
"""

import contextlib
import copy
import socket
import threading
import time
from unittest import mock

import psycopg
import pytest
from django.db import OperationalError, connection, connections
from psycopg_pool import PoolTimeout

from core import readiness
from core.postgresql.base import describe_failure

pytestmark = [
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL only"),
    pytest.mark.django_db(transaction=True),
]


class Proxy:
    """Forwards 127.0.0.1:port to the database server, until killed."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        self._accepting()

    def _accepting(self) -> None:
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:  # closed by kill()
                return
            server = socket.create_connection(self.target, timeout=5)
            server.settimeout(None)
            self.sockets += [client, server]
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def kill(self) -> None:
        """New connections are refused; open ones are cut."""
        # shutdown() wakes the thread blocked in accept(); close() alone would not.
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self.sockets.clear()

    def start(self) -> None:
        """Accept again, on the same port."""
        self.listener = socket.create_server(("127.0.0.1", self.port))
        self._accepting()


@pytest.fixture
def proxy():
    settings = connection.settings_dict
    proxy = Proxy((settings["HOST"] or "127.0.0.1", int(settings["PORT"] or 5432)))
    yield proxy
    proxy.kill()


@pytest.fixture
def database(proxy, settings):
    """A connection to the test database through the proxy, with a pool of its own."""
    settings.DATABASE_PROBE_INTERVAL = 0
    settings_dict = copy.deepcopy(connection.settings_dict)
    settings_dict.update(HOST="127.0.0.1", PORT=str(proxy.port))
    # Long enough that a test waiting for it would fail on its deadline, not pass.
    settings_dict["OPTIONS"]["pool"].update(min_size=2, max_size=4, timeout=30)
    wrapper = connections["default"].__class__(settings_dict, alias="outage")
    yield wrapper
    wrapper.close()
    wrapper._discard_pool()
    wrapper._outages.pop("outage", None)


def select_one(database) -> int:
    with database.cursor() as cursor:
        cursor.execute("SELECT 1")
        (value,) = cursor.fetchone()
    database.close()  # back to the pool, as at the end of a request
    return value


def fails(database) -> OperationalError:
    with pytest.raises(OperationalError) as failure:
        select_one(database)
    return failure.value


def wait_for_probe(database) -> None:
    """Until no probe runs (bounded: a probe waits at most connect_timeout)."""
    for _ in range(200):
        if not database.outage.probing:
            return
        time.sleep(0.05)
    raise AssertionError("the probe did not finish within 10 s")


def test_a_dead_server_fails_the_request_at_once_not_at_the_pool_timeout(proxy, database):
    assert select_one(database) == 1
    pool = database.pool
    proxy.kill()
    error = fails(database)
    # Django's backend alone waits the pool's 30 s for a connection, then
    # raises PoolTimeout; here the request fails on one refused probe.
    assert not isinstance(error.__cause__, PoolTimeout)
    assert database.outage.down_since is not None
    # The pool was closed (anything waiting on it is released) and dropped.
    assert pool.closed
    assert "outage" not in database._connection_pools


def test_while_down_a_request_neither_waits_nor_connects(proxy, database, settings):
    select_one(database)
    proxy.kill()
    fails(database)
    settings.DATABASE_PROBE_INTERVAL = 3600
    with mock.patch("psycopg.connect", side_effect=psycopg.OperationalError("refused")) as connect:
        errors = [fails(database) for _ in range(20)]
        wait_for_probe(database)
    # One probe in the interval, in its own thread; no request opened a pool.
    assert connect.call_count == 1
    assert "outage" not in database._connection_pools
    assert all("the database is unavailable" in str(error) for error in errors)


def test_serves_again_as_soon_as_a_probe_connects(proxy, database):
    select_one(database)
    old_pool = database.pool
    proxy.kill()
    fails(database)
    proxy.start()
    failed = 0
    for _ in range(100):  # each try may start a probe; the next one sees its result
        try:
            assert select_one(database) == 1
            break
        except OperationalError:
            failed += 1
            wait_for_probe(database)
    else:
        raise AssertionError("still failing 100 tries after the server came back")
    assert failed <= 1  # the try that started the probe
    assert database.outage.down_since is None
    # A fresh pool, without the old one's dead connections and reconnection backoff.
    assert database.pool is not old_pool


def test_a_restart_between_requests_costs_no_request(proxy, database):
    """Every pooled connection died, the server is back: checked, replaced, not reported."""
    select_one(database)
    proxy.kill()
    proxy.start()
    assert select_one(database) == 1
    assert database.outage.down_since is None
    assert select_one(database) == 1


def test_readiness_is_bounded_by_the_same_state(proxy, database, settings):
    """GET /readyz's query fails at once too, without a connection attempt of its own."""
    select_one(database)
    proxy.kill()
    fails(database)  # finds the server down
    fails(database)  # starts a probe, which fails
    wait_for_probe(database)
    settings.DATABASE_PROBE_INTERVAL = 3600
    with (
        mock.patch("core.readiness.connection", database),
        mock.patch("psycopg.connect") as connect,
        pytest.raises(OperationalError, match="the database is unavailable"),
    ):
        readiness._select_one()
    connect.assert_not_called()


def test_a_first_connection_to_a_server_that_is_not_there_fails_at_once(proxy, database):
    """No pool is opened on a server that is down: its first client would wait the pool timeout."""
    proxy.kill()
    error = fails(database)
    assert not isinstance(error.__cause__, PoolTimeout)
    assert "outage" not in database._connection_pools
    # One line: which server, database and user, why, and what to do.
    name = database.settings_dict["NAME"]
    assert str(error).startswith(f"PostgreSQL at 127.0.0.1:{proxy.port}, database {name!r}, user ")
    assert "Connection refused; start PostgreSQL there, or point DATABASE_URL" in str(error)
    assert "\n" not in str(error)


def test_migrate_reports_a_server_that_is_not_there_as_one_check_error(proxy, database):
    proxy.kill()
    (error,) = database.validation.check()
    assert error.id == "postgresql.E001"
    assert error.obj == "DATABASES['outage']"
    assert error.msg.startswith(f"PostgreSQL at 127.0.0.1:{proxy.port}, database ")
    assert "\n" not in error.msg
    # A failed check is reported, not logged as an outage.
    assert database.outage.down_since is None


def test_the_check_passes_when_the_server_answers(database):
    assert database.validation.check() == []


@pytest.mark.parametrize(
    ("libpq", "reason", "advice"),
    [
        (
            'connection failed: connection to server at "db", port 6432 failed: '
            "Connection refused\n\tIs the server running on that host?",
            "Connection refused",
            "start PostgreSQL there, or point DATABASE_URL at a server that runs",
        ),
        (
            'connection failed: connection to server at "db", port 6432 failed: '
            'FATAL:  password authentication failed for user "app"',
            'password authentication failed for user "app"',
            "create the role with the password in DATABASE_URL, or correct DATABASE_URL",
        ),
        (
            'connection failed: connection to server at "db", port 6432 failed: '
            "fe_sendauth: no password supplied",
            "fe_sendauth: no password supplied",
            "add the role's password to DATABASE_URL",
        ),
        (
            'connection failed: connection to server at "db", port 6432 failed: '
            'FATAL:  database "shop" does not exist',
            'database "shop" does not exist',
            "create it: sudo -u postgres createdb --owner app shop",
        ),
    ],
    ids=["refused", "password", "no-password", "no-database"],
)
def test_a_connection_failure_is_described_in_one_line(libpq, reason, advice):
    params = {"host": "db", "port": 6432, "dbname": "shop", "user": "app"}
    line = describe_failure(params, psycopg.OperationalError(libpq))
    assert line.startswith(
        f"PostgreSQL at db:6432, database 'shop', user 'app': {reason}; {advice}"
    )
    assert "\n" not in line
