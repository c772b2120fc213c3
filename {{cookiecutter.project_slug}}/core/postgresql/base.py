"""Django's PostgreSQL backend, made to fail fast while the server is down and recover at once.

With Django's backend alone, a server that dies (or restarts) under a worker
costs every request the whole pool timeout: psycopg_pool keeps the dead
connections until it checks them, retries each check with a backoff of
seconds, and reconnects with a backoff that reaches tens of seconds, so the
worker serves again long after the server does.

This backend keeps, per process and database alias, whether the server is
known to be down:

- Up: a connection taken from the pool is checked here (one empty query)
  before use. If it is dead, one direct connection attempt (a probe) tells a
  dead connection from a dead server. The server answers: the pool's idle
  connections are checked (they likely died with the same restart) and the
  request takes another. It does not: the server is marked down, the pool is
  closed (its waiting requests fail at once) and the request fails.
- Down: a request fails at once with `OperationalError`, which
  core.middleware.DatabaseErrorMiddleware answers with 503. At most one probe
  runs at a time, in a thread of its own, started by a request at most every
  settings.DATABASE_PROBE_INTERVAL seconds; a probe waits at most the
  connection's `connect_timeout`. When one connects, the server is marked up
  and the next request opens a fresh pool.

A process's first connection (and the first after an outage) is a direct
one before the pool opens: a pool opened on a server that is not there
retries in the background and makes its first client wait the whole pool
timeout. Every connection failure this backend raises or logs is one line
saying which server, database and user failed, why, and what to do
(`describe_failure`); `manage.py migrate` reports it as a system check error
(`DatabaseValidation`) instead of a traceback.

The pool's own check must be off (`"check": None` in the pool options, as
config/settings.py sets it): it would retry dead connections with a backoff.
"""

import getpass
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import ClassVar

from django.conf import settings
from django.core import checks
from django.db.backends.base.validation import BaseDatabaseValidation
from django.db.backends.postgresql import base

logger = logging.getLogger(__name__)


@dataclass
class Outage:
    """Whether one alias's server is known to be down, in this process."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    down_since: float | None = None  # time.monotonic() when it went down
    reason: str = ""
    last_probe: float = float("-inf")  # time.monotonic() when the last probe started
    probing: bool = False


def describe_failure(params: dict, exc: BaseException) -> str:
    """One line: the server, database and user a connection failed to reach, why, what to do.

    `params` are the connection's parameters (`host`, `port`, `dbname`, `user`,
    as Django's get_connection_params() gives them); `exc` is the error, whose
    first line is libpq's ("connection to server at ..., port 5432 failed:
    Connection refused").
    """
    port = params.get("port") or 5432
    where = f"{params['host']}:{port}" if params.get("host") else f"the local socket, port {port}"
    database = params.get("dbname")
    user = params.get("user") or getpass.getuser()  # libpq's default: the login name
    first_line = next(iter(str(exc).strip().splitlines()), type(exc).__name__)
    # libpq: "connection failed: connection to server at "h", port p failed: FATAL:  <why>"
    reason = first_line.rpartition(" failed: ")[2].removeprefix("FATAL:").strip()
    if "database" in reason and "does not exist" in reason:
        advice = f"create it: sudo -u postgres createdb --owner {user} {database}"
    elif "no password supplied" in reason:
        advice = "add the role's password to DATABASE_URL (postgres://USER:PASSWORD@HOST/NAME)"
    elif "password" in reason or "role" in reason:
        advice = "create the role with the password in DATABASE_URL, or correct DATABASE_URL"
    else:
        advice = "start PostgreSQL there, or point DATABASE_URL at a server that runs"
    return (
        f"PostgreSQL at {where}, database {database!r}, user {user!r}: {reason}; {advice}"
        " (README: The database)"
    )


class DatabaseValidation(BaseDatabaseValidation):
    def check(self, **kwargs):
        """The server answers: `manage.py migrate` checks it first, and stops with one error.

        One direct connection attempt, bounded by `connect_timeout`, outside the
        pool and the outage state (a failed check is reported here, not logged).
        """
        params = self.connection.get_connection_params()
        try:
            self.connection.Database.connect(**params).close()
        except self.connection.Database.Error as exc:
            return [
                checks.Error(
                    describe_failure(params, exc),
                    obj=f"DATABASES[{self.connection.alias!r}]",
                    id="postgresql.E001",
                )
            ]
        return []


class DatabaseWrapper(base.DatabaseWrapper):
    validation_class = DatabaseValidation
    # Per process and alias, like the pools: every thread's wrapper shares them.
    _outages: ClassVar[dict[str, Outage]] = {}
    _outages_lock = threading.Lock()

    @property
    def outage(self) -> Outage:
        with self._outages_lock:
            return self._outages.setdefault(self.alias, Outage())

    def get_new_connection(self, conn_params):
        """A connection from the pool (or a new one without a pool), checked.

        Raises psycopg.OperationalError at once while the server is known to be
        down, and after one probe when a pooled connection was dead and the
        server does not answer.
        """
        self._refuse_while_down(conn_params)
        if not self.pool:
            try:
                return super().get_new_connection(conn_params)
            except self.Database.OperationalError as exc:
                raise self._mark_down(conn_params, exc) from exc
        if self.pool.closed:
            # Not opened yet: a pool opened while the server is not there would
            # make this request wait its whole timeout, so a direct attempt first.
            self._probe_or_mark_down(conn_params)
        # Every connection in the pool may have died with the server: one try
        # per connection, plus the one the pool opens once they are discarded.
        for _ in range(self.pool.max_size + 1):
            connection = super().get_new_connection(conn_params)
            if not self.settings_dict["CONN_HEALTH_CHECKS"]:
                return connection
            try:
                self.pool.check_connection(connection)
            except self.Database.Error:
                # Returned broken, the pool discards it and opens another.
                connection._pool.putconn(connection)
            else:
                return connection
            self._probe_or_mark_down(conn_params)
            # The server answers: the pool's other idle connections probably
            # died with its restart; drop them now rather than one per request.
            self.pool.check()
        raise self.Database.OperationalError("every pooled connection was dead")

    def _refuse_while_down(self, conn_params) -> None:
        """Return if the server is not known to be down; otherwise raise at once.

        While down, start a probe unless one runs or one started less than
        DATABASE_PROBE_INTERVAL seconds ago.
        """
        outage = self.outage
        with outage.lock:
            if outage.down_since is None:
                return
            probe = not outage.probing and (
                time.monotonic() - outage.last_probe >= settings.DATABASE_PROBE_INTERVAL
            )
            if probe:
                outage.probing = True
                outage.last_probe = time.monotonic()
            reason = outage.reason
        if probe:
            threading.Thread(
                target=self._probe, args=(conn_params,), name=f"{self.alias}-probe", daemon=True
            ).start()
        # A request that raced the outage may have opened a pool since: close
        # it, so that nothing waits on it.
        self._discard_pool()
        raise self.Database.OperationalError(f"the database is unavailable: {reason}")

    def _probe(self, conn_params) -> None:
        """In its own thread: one connection attempt; the server is up if it connects."""
        outage = self.outage
        try:
            self.Database.connect(**conn_params).close()
        except self.Database.Error:
            return
        finally:
            with outage.lock:
                outage.probing = False
        with outage.lock:
            down_since, outage.down_since = outage.down_since, None
        if down_since is not None:
            logger.warning(
                "The database answers again after %.1f s down", time.monotonic() - down_since
            )

    def _probe_or_mark_down(self, conn_params) -> None:
        """One connection attempt, closed at once; failing, the server is marked down."""
        try:
            self.Database.connect(**conn_params).close()
        except self.Database.OperationalError as exc:
            raise self._mark_down(conn_params, exc) from exc

    def _mark_down(self, conn_params, exc: Exception) -> Exception:
        """Mark the server down; return the error to raise, one line saying what failed."""
        outage = self.outage
        reason = describe_failure(conn_params, exc)
        with outage.lock:
            went_down = outage.down_since is None
            if went_down:
                outage.down_since = time.monotonic()
            outage.reason = reason
        if went_down:
            logger.warning("The database is down; failing fast until a probe connects: %s", reason)
        self._discard_pool()
        return self.Database.OperationalError(reason)

    def _discard_pool(self) -> None:
        """Close this alias's pool, if any: its waiting clients fail with PoolClosed.

        The first request after the outage opens a new one, free of the old
        one's dead connections and reconnection backoff.
        """
        with self._outages_lock:
            pool = self._connection_pools.pop(self.alias, None)
        if pool is not None:
            pool.close()
