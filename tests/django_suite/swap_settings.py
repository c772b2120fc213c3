"""Django's own test settings (tests/test_sqlite.py of its source release), plus what the
project's classes read, set so that they change nothing Django's tests expect."""

from test_sqlite import *  # noqa: F403

# core.limits caps request bodies; Django's tests send bodies of every size.
REQUEST_MAX_BODY_BYTES = 2**31
