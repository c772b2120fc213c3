"""POST /tasks/survey/ and GET /tasks/<id>/: status codes, shapes, and every bad input."""

import json
import uuid

import pytest
from django_tasks_db.models import DBTaskResult

from core.asgi import ASGIHandler
from core.testing import asgi_request
from tasks.models import TaskProgress
from tasks.tests import jobs
from tasks.tests.conftest import run_worker
from tasks.views import MAX_BODY_BYTES

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/tasks/survey/"
STATE_KEYS = {
    "id",
    "task",
    "status",
    "attempts",
    "enqueued_at",
    "started_at",
    "finished_at",
    "progress",
    "result",
    "errors",
}


@pytest.fixture(autouse=True)
def no_relay(settings):
    """No relay outlives these tests (tasks/tests/test_progress.py tests the relay)."""
    settings.TASKS_PROGRESS_EVENTS = None


async def post(async_client, body=b"", headers=None):
    return await async_client.post(
        URL, body, content_type="application/json", headers=headers or {}
    )


async def test_post_answers_202_with_the_task_and_where_to_poll(async_client, token_headers):
    response = await post(async_client, b"{}", token_headers)
    assert response.status_code == 202
    state = response.json()
    assert set(state) == STATE_KEYS
    assert state["task"] == "survey"
    assert (state["status"], state["attempts"], state["result"], state["errors"]) == (
        "READY",
        0,
        None,
        [],
    )
    assert response["Location"] == f"/tasks/{state['id']}/"
    db_result = await DBTaskResult.objects.aget(id=state["id"])
    assert db_result.task_path == "tasks.tasks.survey"


async def test_post_without_a_body_enqueues_too(async_client, token_headers):
    response = await post(async_client, b"", token_headers)
    assert response.status_code == 202
    assert await DBTaskResult.objects.filter(id=response.json()["id"]).aexists()


async def test_get_of_the_location_gives_the_state(async_client, token_headers):
    location = (await post(async_client, b"{}", token_headers))["Location"]
    response = await async_client.get(location, headers=token_headers)
    assert response.status_code == 200
    assert response["Cache-Control"].startswith("max-age=0")
    state = response.json()
    assert set(state) == STATE_KEYS
    assert (state["status"], state["progress"]) == ("READY", None)


async def test_get_shows_progress_result_and_attempts_of_a_finished_task(
    async_client, token_headers
):
    result = await jobs.add.aenqueue(2, 3)
    await TaskProgress.objects.acreate(result_id=result.id, done=1, total=1, message="added")
    await run_worker(max_tasks=1)
    response = await async_client.get(f"/tasks/{result.id}/", headers=token_headers)
    state = response.json()
    assert (state["task"], state["status"], state["attempts"], state["result"]) == (
        "add",
        "SUCCESSFUL",
        1,
        5,
    )
    assert state["progress"] == {"done": 1, "total": 1, "message": "added"}
    assert state["started_at"] and state["finished_at"]


async def test_get_shows_the_errors_of_a_failed_task(async_client, token_headers):
    result = await jobs.fail.aenqueue("no luck")
    await run_worker(max_tasks=1)
    state = (await async_client.get(f"/tasks/{result.id}/", headers=token_headers)).json()
    assert (state["status"], state["result"]) == ("FAILED", None)
    (error,) = state["errors"]
    assert error["exception"] == "builtins.ValueError"
    assert "ValueError: no luck" in error["traceback"]


@pytest.mark.parametrize("path", [f"/tasks/{uuid.uuid4()}/", "/tasks/not-a-uuid/", "/tasks/1/"])
async def test_an_unknown_or_malformed_id_is_404_json(async_client, token_headers, path):
    response = await async_client.get(path, headers=token_headers)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert "detail" in response.json()


async def test_an_unknown_id_is_404_json_with_debug_on_too(async_client, token_headers, settings):
    settings.DEBUG = True  # Http404 would get Django's technical HTML page
    response = await async_client.get(f"/tasks/{uuid.uuid4()}/", headers=token_headers)
    assert response.status_code == 404
    assert response.json() == {"detail": "No such task."}


@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.parametrize(
    "authorization", [None, "Bearer " + "n0t-a-real-token" * 3, "Basic dXNlcjpwYXNz"]
)
async def test_a_missing_or_invalid_token_is_401_json(async_client, method, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    if method == "post":
        response = await post(async_client, b"{}", headers)
    else:
        response = await async_client.get(f"/tasks/{uuid.uuid4()}/", headers=headers)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert "detail" in response.json()
    assert not await DBTaskResult.objects.aexists()


async def test_a_wrong_method_is_405(async_client, token_headers):
    response = await async_client.get(URL, headers=token_headers)
    assert (response.status_code, response["Allow"]) == (405, "POST")
    state = (await post(async_client, b"{}", token_headers)).json()
    response = await async_client.delete(f"/tasks/{state['id']}/", headers=token_headers)
    assert (response.status_code, response["Allow"]) == (405, "GET, HEAD")
    assert await DBTaskResult.objects.acount() == 1


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"{",
        b'{"x": 1}',
        b"[]",
        b"[{}]",
        b"null",
        b"0",
        b'"\\ud800"',
        b'{"\\udfff": 1}',
        b"\xff\xfe{}",
        b"[" * 500 + b"]" * 500,  # within the cap, nested far past core.client_json's limit
        b"NaN",
    ],
    ids=lambda body: repr(body[:16]),
)
async def test_a_bad_body_is_400_json_and_enqueues_nothing(async_client, token_headers, body):
    response = await post(async_client, body, token_headers)
    assert response.status_code == 400
    assert "detail" in response.json()
    assert not await DBTaskResult.objects.aexists()


async def asgi_post(body: bytes, token_headers: dict) -> object:
    headers = [
        ("authorization", token_headers["Authorization"]),
        ("accept", "application/json"),
        ("content-type", "application/json"),
        ("content-length", str(len(body))),
    ]
    return await asgi_request(ASGIHandler(), "POST", URL, headers=headers, body=body)


async def test_a_body_over_the_cap_is_413_at_the_asgi_edge(token_headers):
    response = await asgi_post(b" " * (MAX_BODY_BYTES - 2) + b"{}" + b" ", token_headers)
    assert response.status == 413
    assert json.loads(response.body) == {"detail": f"Request body over {MAX_BODY_BYTES} bytes."}
    assert not await DBTaskResult.objects.aexists()


async def test_a_body_within_the_cap_passes_the_asgi_edge(token_headers):
    response = await asgi_post(b" " * (MAX_BODY_BYTES - 2) + b"{}", token_headers)
    assert response.status == 202
    assert await DBTaskResult.objects.acount() == 1
