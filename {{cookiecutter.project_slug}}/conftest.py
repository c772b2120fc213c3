{% if cookiecutter | uses_redis or cookiecutter.database == "postgresql" -%}
import os

{% endif -%}
import pytest
{%- if cookiecutter | uses_redis %}
import redis
{%- endif %}
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connections, transaction
from django.test import TransactionTestCase
from pytest_asyncio import is_async_test

{% if cookiecutter.database == "postgresql" -%}
from core.postgresql.base import describe_failure
{% endif -%}
from core.static import ServeStaticMiddleware


@pytest.fixture(autouse=True)
def plain_http(settings):
    """Test clients speak plain HTTP; core/tests/test_settings.py checks the HTTPS settings."""
    settings.SECURE_SSL_REDIRECT = False


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """Hash test passwords with MD5: PBKDF2's million rounds cost 0.3 s a password."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix, tmp_path_factory):
    """SQLite tests use a database file, as the project does, not an in-memory database.

    Django ignores close() on a connection to an in-memory database (closing
    the last one would drop it), so every thread's connection would be left
    to the garbage collector, and no test could tell whether the project
    closes its connections.
    """
    database = settings.DATABASES["default"]
    if database["ENGINE"] == "django.db.backends.sqlite3":
        name = tmp_path_factory.mktemp("db") / "test.sqlite3"
        database.setdefault("TEST", {})["NAME"] = str(name)


# Per database alias: the tables migrations left rows in (content types and
# permissions), with those rows.
_migrated_rows: dict[str, dict[str, list[tuple]]] = {}


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """pytest-django's test databases, and the rows their migrations wrote."""
    with django_db_blocker.unblock():
        for alias in connections:
            with connections[alias].cursor() as cursor:
                tables = nonempty_tables(cursor, connections[alias])
                _migrated_rows[alias] = {table: rows(cursor, table) for table in tables}
    yield


@pytest.fixture(scope="session", autouse=True)
def flush_what_tests_wrote():
    """After a `transaction=True` test, empty only the tables it left rows in.

    Django's flush empties every table, then re-creates every content type
    and permission through the post_migrate signal: 50 queries, 12 ms a test
    on SQLite and 40 ms on PostgreSQL, where TRUNCATE costs for each table
    named, written or not. The database is left in the same state: every
    table empty but those migrations filled, whose rows are compared with
    what migrations wrote; if a test changed them, Django's own flush runs.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(TransactionTestCase, "_fixture_teardown", fixture_teardown)
        yield


_django_fixture_teardown = TransactionTestCase._fixture_teardown


def fixture_teardown(self: TransactionTestCase) -> None:
    """TransactionTestCase._fixture_teardown, emptying only the tables written."""
    if self.available_apps is not None or self.serialized_rollback:
        _django_fixture_teardown(self)
        return
    for alias in self._databases_names(include_mirrors=False):
        connection = connections[alias]
        migrated = _migrated_rows[alias]
        with connection.cursor() as cursor:
            written = nonempty_tables(cursor, connection)
            if any(rows(cursor, table) != migrated[table] for table in migrated):
                _django_fixture_teardown(self)
                return
        # DELETE, not the TRUNCATE of Django's flush: PostgreSQL's TRUNCATE
        # replaces each table's files, 20 ms a test, where deleting a few rows
        # costs under 1 ms. Django's foreign keys are checked at commit on both
        # databases, so the tables are emptied in one transaction, in any order.
        delete = "DELETE FROM {}"  # the table names are Django's own, quoted
        with transaction.atomic(using=alias), connection.cursor() as cursor:
            for table in written:
                if table not in migrated:
                    cursor.execute(delete.format(connection.ops.quote_name(table)))


def nonempty_tables(cursor, connection) -> list[str]:
    """The names of the project's tables that hold a row, in one query."""
    tables = connection.introspection.django_table_names(only_existing=True, include_views=False)
    if not tables:
        return []
    quote = connection.ops.quote_name
    # The table names are Django's own, quoted.
    exists = "SELECT %s WHERE EXISTS (SELECT 1 FROM {})"
    cursor.execute(" UNION ALL ".join(exists.format(quote(table)) for table in tables), tables)
    return [table for (table,) in cursor.fetchall()]


def rows(cursor, table: str) -> list[tuple]:
    """Every row of a table, in a stable order."""
    select = "SELECT * FROM {} ORDER BY 1"
    cursor.execute(select.format(cursor.db.ops.quote_name(table)))
    return cursor.fetchall()


@pytest.fixture(autouse=True)
def static_files_from_apps(settings, monkeypatch):
    """Tests run without `collectstatic`: serve static files from the apps, unhashed.

    Each test client builds its own handler, and ServeStatic walks and stats
    every app's static files each time one is built (50 ms, more than most
    tests take): here the walk is done once for each configuration.
    """
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    settings.SERVESTATIC_USE_FINDERS = True
    monkeypatch.setattr(ServeStaticMiddleware, "add_files_from_finders", add_files_once)


# The files and directories ServeStatic found in the apps, by the settings it read.
_static_files: dict[str, tuple[dict, list]] = {}
STATIC_SETTINGS = {"DEBUG", "FORCE_SCRIPT_NAME", "INSTALLED_APPS", "STORAGES"}


def add_files_once(middleware: ServeStaticMiddleware) -> None:
    """ServeStaticMiddleware.add_files_from_finders, walking the apps once per configuration."""
    key = repr(
        [
            (name, getattr(settings, name))
            for name in sorted(dir(settings))
            if name in STATIC_SETTINGS or name.startswith(("SERVESTATIC_", "STATIC"))
        ]
    )
    if key not in _static_files:
        super(ServeStaticMiddleware, middleware).add_files_from_finders()
        _static_files[key] = (dict(middleware.files), list(middleware.directories))
    files, directories = _static_files[key]
    middleware.files.update(files)
    middleware.directories[:0] = directories


@pytest.fixture
async def close_db_connections():
    """Close the connections that async ORM calls opened on asgiref's worker thread.

    pytest-django only manages the main thread's connection; without this an
    async test leaves its connection open, and PostgreSQL refuses to drop the
    test database at the end of the run.
    """
    yield
    await sync_to_async(connections.close_all)()


def pytest_collection_modifyitems(items):
    for item in items:
        if is_async_test(item) and "close_db_connections" not in item.fixturenames:
            item.fixturenames.append("close_db_connections")
        # Served by Django's own classes (config/settings.py), the project's are not under test.
        if settings.DJANGO_STOCK_CLASSES and item.get_closest_marker("project_classes"):
            item.add_marker(pytest.mark.skip(reason="DJANGO_STOCK_CLASSES: Django's own classes"))
{%- if cookiecutter.database == "postgresql" %}


# Why the tests cannot use PostgreSQL, in one line; empty when they can.
_no_database = ""


def pytest_sessionstart(session):
    """Check once, before pytest-django creates the test database, that PostgreSQL answers.

    Otherwise every database test fails on its own with a long traceback. When
    it does not answer, the database tests skip with one line naming the
    server, as the Redis tests do, and the others run; under CI=true the run
    stops at once with that line and a failing exit code.
    """
    global _no_database  # set once, before any test runs
    connection = connections["default"]
    params = connection.get_connection_params()
    # pytest-django creates the test database from the "postgres" database,
    # falling back to the project's, as Django does.
    for name in ("postgres", params["dbname"]):
        try:
            connection.Database.connect(**{**params, "dbname": name}).close()
        except connection.Database.Error as exc:
            error = exc
        else:
            return
    _no_database = describe_failure(params, error)
    if os.environ.get("CI", "").lower() == "true":
        pytest.exit(f"The tests need PostgreSQL: {_no_database}", returncode=1)


def pytest_runtest_setup(item):
    if _no_database and (
        item.get_closest_marker("django_db") or "django_db_setup" in item.fixturenames
    ):
        pytest.skip(f"PostgreSQL does not answer: {_no_database}")


def pytest_terminal_summary(terminalreporter):
    if _no_database:
        terminalreporter.write_line(f"Database tests skipped: {_no_database}", yellow=True)
{%- endif %}
{%- if cookiecutter | uses_redis %}


@pytest.fixture(scope="session")
def redis_server():
    """The Redis at REDIS_URL; tests use keys of their own there and delete them."""
    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        message = f"Redis at REDIS_URL={settings.REDIS_URL} does not answer ({exc})"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(f"{message}: start redis-server or set REDIS_URL")
    finally:
        client.close()
{%- endif %}
