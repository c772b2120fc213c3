"""The example task: the pattern to copy for async background work.

`survey` runs each check of settings.TASKS_SURVEY_CHECKS in turn (real I/O:
the database, Redis, the upstream services), reports its progress after
each (tasks.progress), and saves what it found with the ORM. A failure to
save (the database briefly down) is retried with backoff (tasks.retries).
"""

from django.conf import settings
from django.db import DatabaseError
from django.tasks import TaskContext, task
from django.utils.module_loading import import_string

from core.readiness import run_check
from tasks.models import Survey
from tasks.progress import report
from tasks.retries import retry


@task(takes_context=True)
@retry(on=DatabaseError, attempts=3, backoff=2.0)
async def survey(context: TaskContext) -> dict:
    """{"ok": bool, "checks": {name: {"ok", "ms", "error"?}}}: every check, one at a time."""
    names = list(settings.TASKS_SURVEY_CHECKS)
    checks = {}
    await report(context, 0, len(names), "starting")
    for done, name in enumerate(names, start=1):
        check = import_string(settings.TASKS_SURVEY_CHECKS[name])
        checks[name] = await run_check(name, check)
        await report(context, done, len(names), name)
    ok = all(result["ok"] for result in checks.values())
    await Survey.objects.aupdate_or_create(
        result_id=context.task_result.id, defaults={"checks": checks, "ok": ok}
    )
    return {"ok": ok, "checks": checks}
