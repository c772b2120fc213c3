"""Log a client's mistake at WARNING, whichever part of Django reports it.

Django logs every SuspiciousOperation it turns into a 400 (a Host header not
in ALLOWED_HOSTS, more query fields than DATA_UPLOAD_MAX_NUMBER_FIELDS, a body
over DATA_UPLOAD_MAX_MEMORY_SIZE, a tampered session) at ERROR, on a
`django.security.<name>` logger. ERROR is for what an operator must fix; a
scanner sending garbage is not that, and alerting on it hides real faults.
"""

import logging


class ClientFaultsAtWarning(logging.Filter):
    """Lower ERROR and CRITICAL records of the `django.security.*` loggers to WARNING."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.WARNING and record.name.startswith("django.security."):
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True
