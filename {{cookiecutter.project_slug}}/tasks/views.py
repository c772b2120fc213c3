"""The tasks API: enqueue the example task, read any task's state.

POST /tasks/survey/ -> 202 {"id", "status", ...} with a Location to poll;
GET /tasks/<id>/ -> the task's status, attempts, progress, result or errors.
Both take any valid bearer token: a task has no owner, and its id (a random
UUID) is only known to whoever enqueued it.
"""

from django.http import HttpRequest, JsonResponse
from django.tasks import TaskResultStatus
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST, require_safe
from django_tasks_db.models import DBTaskResult, get_date_max

from core.auth import token_required
from core.client_json import ClientJSONError, loads
from core.limits import max_body
from tasks import progress
from tasks.tasks import survey

# The survey takes no arguments: its body is an empty JSON object, or nothing.
MAX_BODY_BYTES = 1024


def describe(db_result: DBTaskResult) -> dict:
    """A task's state as JSON, the same shape for every status.

    Read from the row alone, so a task whose code has since gone still answers.
    """
    state = {
        "id": str(db_result.id),
        "task": db_result.task_path.rpartition(".")[2],
        "status": db_result.status,
        "attempts": len(db_result.worker_ids),
        "enqueued_at": db_result.enqueued_at.isoformat(),
        "started_at": db_result.started_at and db_result.started_at.isoformat(),
        "finished_at": db_result.finished_at and db_result.finished_at.isoformat(),
        "progress": None,
        "result": None,
        "errors": [],
    }
    if hasattr(db_result, "progress"):
        state["progress"] = db_result.progress.as_dict()
    if db_result.status == TaskResultStatus.SUCCESSFUL:
        state["result"] = db_result.return_value
    if db_result.exception_class_path:
        # A failed task's error; for a task waiting to retry, the last attempt's.
        state["errors"] = [
            {"exception": db_result.exception_class_path, "traceback": db_result.traceback}
        ]
    if db_result.status == TaskResultStatus.READY and db_result.run_after != get_date_max():
        state["run_after"] = db_result.run_after.isoformat()
    return state


@max_body(MAX_BODY_BYTES)  # 413 at the ASGI edge
@require_POST
@token_required
async def enqueue_survey(request: HttpRequest) -> JsonResponse:
    """POST /tasks/survey/ {} -> 202 with the task's state, Location: /tasks/<id>/.

    The state is READY, or already RUNNING when a worker claimed the task at once.

    400 JSON for a body that is not JSON, or not an empty object (the survey
    takes no arguments).
    """
    if request.body.strip():
        try:
            body = loads(request.body)
        except ClientJSONError as exc:
            return JsonResponse({"detail": f"The body must be JSON ({exc})."}, status=400)
        if body != {}:
            return JsonResponse(
                {"detail": "The survey takes no arguments: send {} or no body."}, status=400
            )
    result = await survey.aenqueue()
    progress.start_relay(result.id, survey.name)
    db_result = await DBTaskResult.objects.select_related("progress").aget(id=result.id)
    response = JsonResponse(describe(db_result), status=202)
    response["Location"] = reverse("tasks:detail", args=[result.id])
    return response


@never_cache
@require_safe
@token_required
async def detail(request: HttpRequest, result_id) -> JsonResponse:
    """GET /tasks/<id>/: the task's state (tasks.views.describe); 404 JSON for an unknown id."""
    try:
        db_result = await DBTaskResult.objects.select_related("progress").aget(id=result_id)
    except DBTaskResult.DoesNotExist:
        # Answered here, not raised: with DEBUG on, Http404 would get Django's HTML page.
        return JsonResponse({"detail": "No such task."}, status=404)
    return JsonResponse(describe(db_result))
