"""A typed client for one upstream API, on top of the shared httpx client.

The pattern to copy for each service the project calls: the base URL and
credentials in one place, methods that return dataclasses instead of JSON,
and the upstream's failures mapped to a few exceptions callers can handle.
The API here is a status service: GET /services/<name> answers
{"name": str, "healthy": bool, "checked_at": ISO time}.

    api = StatusApi("https://status.example.com/api", token=token_from_settings)
    status = await api.service("billing")
"""

import datetime
from dataclasses import dataclass
from urllib.parse import quote

import httpx

from upstreams.client import get_client
from upstreams.retries import request


class StatusApiError(Exception):
    """The status API failed in a way a caller cannot fix."""


class StatusApiUnavailable(StatusApiError):
    """Unreachable, too slow, or a 5xx: worth trying again later."""


class ServiceNotFound(StatusApiError):
    pass


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    healthy: bool
    checked_at: datetime.datetime


class StatusApi:
    def __init__(self, base_url: str, token: str, client: httpx.AsyncClient | None = None):
        self.base_url = base_url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        self.client = client

    async def service(self, name: str, deadline: float = 2.0) -> ServiceStatus:
        """The named service's status. `name` may come from a user: it is one path segment.

        Raises ServiceNotFound (for "", "." and "..", which would name another
        path, without asking), StatusApiUnavailable, or StatusApiError (a body
        over HTTPX_MAX_RESPONSE_BYTES included).
        """
        if name in {"", ".", ".."}:
            raise ServiceNotFound(name)
        url = f"{self.base_url}/services/{quote(name, safe='')}"
        try:
            response = await request(
                self.client or get_client(), "GET", url, headers=self.headers, deadline=deadline
            )
        except (TimeoutError, httpx.TransportError) as exc:
            raise StatusApiUnavailable(f"status API unreachable: {exc!r}") from exc
        except httpx.HTTPError as exc:  # undecodable or too large a body, redirect loop
            raise StatusApiError(f"bad answer from the status API: {exc!r}") from exc
        if response.status_code == 404:
            raise ServiceNotFound(name)
        if response.status_code >= 500:
            raise StatusApiUnavailable(f"status API answered {response.status_code}")
        if response.is_error:
            raise StatusApiError(f"status API refused the request: {response.status_code}")
        try:
            body = response.json()
            checked_at = datetime.datetime.fromisoformat(body["checked_at"])
            # bool("false") is True: the fields must have their JSON types, not just be truthy.
            if not isinstance(body["name"], str) or not isinstance(body["healthy"], bool):
                raise TypeError("name must be a string and healthy a boolean")
            if checked_at.tzinfo is None:
                raise ValueError("checked_at has no time zone")
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            raise StatusApiError(f"unexpected answer from the status API: {exc!r}") from exc
        return ServiceStatus(name=body["name"], healthy=body["healthy"], checked_at=checked_at)
