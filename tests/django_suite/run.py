"""Run Django's own tests with a baked project's handler and middleware classes in Django's place.

    python run.py PROJECT DJANGO_TESTS [runtests.py arguments...]

After django.setup() (runtests.py calls it), django.core.handlers.asgi.ASGIHandler
(and django.core.asgi's name for it) becomes core.asgi.ASGIHandler, and each of
Django's middleware classes that core.middleware subclasses becomes the
subclass; test modules import them afterwards, and settings name them by the
paths now resolving to the project's classes. Run with the project's Python.
"""

import runpy
import sys
from pathlib import Path

project, tests = Path(sys.argv[1]), Path(sys.argv[2])
sys.path[:0] = [str(Path(__file__).parent), str(project), str(tests)]

import django  # noqa: E402

_setup = django.setup


def setup(*args, **kwargs):
    _setup(*args, **kwargs)
    swap()


def swap() -> None:
    import core.asgi
    import core.middleware
    import django.core.asgi
    from django.contrib.auth import middleware as auth
    from django.contrib.messages import middleware as messages
    from django.contrib.sessions import middleware as sessions
    from django.core.handlers import asgi
    from django.middleware import clickjacking, common, csp, csrf, security

    asgi.ASGIHandler = django.core.asgi.ASGIHandler = core.asgi.ASGIHandler
    swapped = []
    for module in (auth, messages, sessions, clickjacking, common, csp, csrf, security):
        for name, value in list(vars(module).items()):
            ours = getattr(core.middleware, name, None)
            if isinstance(value, type) and isinstance(ours, type) and issubclass(ours, value):
                setattr(module, name, ours)
                swapped.append(name)
    print(f"Swapped in the project's ASGIHandler, {', '.join(sorted(swapped))}", flush=True)


django.setup = setup
sys.argv = ["runtests.py", "--settings=swap_settings", *sys.argv[3:]]
runpy.run_path(str(tests / "runtests.py"), run_name="__main__")
