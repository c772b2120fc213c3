"""The benchmarks' own arithmetic, on fixed input (the benchmarks themselves are not run here)."""

import bench
from bench import gil, orm

# py-spy's raw output (`record --gil --threads --format=raw`), abridged from a real run.
RAW = """\
thread (26623): request_0;Thread.run (threading.py:1010);SyncThreads.run_calls (core/asgi.py:257);SyncToAsync.thread_handler (asgiref/sync.py:635);QuerySet.get (django/db/models/query.py:718);Query.clone (django/db/models/sql/query.py:402);_keep_alive (copy.py:231) 6
thread (26623): request_0;Thread.run (threading.py:1010);SyncThreads.run_calls (core/asgi.py:257);BaseCursor._execute_gen (psycopg/_cursor_base.py:211) 3
thread (26623): request_0;Thread.run (threading.py:1010);SyncThreads.run_calls (core/asgi.py:257);Condition.wait (threading.py:359) 2
thread (26614): MainThread;Runner.run (asyncio/runners.py:118);RequestResponseCycle.run_asgi (uvicorn/protocols/http/httptools_impl.py:409);ASGIHandler.serve_request (core/asgi.py:474);MiddlewareMixin.__acall__ (django/utils/deprecation.py:300);LazyObject.__getattribute__ (django/utils/functional.py:280) 4
thread (26614): MainThread;Runner.run (asyncio/runners.py:118);RequestResponseCycle.run_asgi (uvicorn/protocols/http/httptools_impl.py:409);ASGIHandler.serve_request (core/asgi.py:474) 1
thread (26614): MainThread;Runner.run (asyncio/runners.py:118);_chain_future.<locals>._set_state (asyncio/futures.py:386) 2
thread (26614): MainThread;Runner.run (asyncio/runners.py:118);HttpToolsProtocol.data_received (uvicorn/protocols/http/httptools_impl.py:174) 3
thread (26614): MainThread 4
thread (26623): request_0;RequestThread.submit (core/asgi.py:350);Lock.acquire (threading.py:100) 1
thread (26623): request_0;DatabaseWrapper.get_new_connection (core/postgresql/base.py:140) 1
py-spy> Wrote raw flamegraph data to '/dev/stdout'. Samples: 27 Errors: 0
"""  # noqa: E501


def test_a_sample_goes_to_the_layer_of_its_innermost_recognised_frame():
    profile = gil.Profile()
    profile.add(RAW)
    assert profile.by_layer == {
        "ORM and Django's database layer": 6,  # copy.py is not recognised: its caller is
        "database driver and pool (psycopg)": 3 + 1,  # core/postgresql: the pool's check
        "sync/async plumbing (asgiref, request threads)": 2 + 2 + 1,
        "middleware": 4,
        "Django's handler: request, URL, response": 1,
        "server: HTTP and event loop": 3,
        gil.NO_FRAME: 4,
    }
    assert profile.by_thread == {gil.MAIN: 14, gil.OTHERS: 13}
    assert profile.share(profile.by_layer["middleware"]) == 4 / 27


def test_a_section_written_twice_keeps_its_plot_once_and_the_pages_plots(tmp_path, monkeypatch):
    page = tmp_path / "benchmarks.md"
    page.write_text("# Benchmarks\n\n## Other\n\ntext\n\n![fanout](img/fanout.png)\n")
    monkeypatch.setattr(bench, "PAGE", page)
    section = [orm.HEADING, "", "a table", "", orm.plot_link(), ""]
    bench.replace_section(orm.HEADING, section)
    bench.replace_section(orm.HEADING, section)
    text = page.read_text()
    assert text.count(orm.plot_link()) == 1
    assert text.endswith("a table\n\n" + orm.plot_link() + "\n\n![fanout](img/fanout.png)\n")
    assert bench.page_section(orm.HEADING) == section
