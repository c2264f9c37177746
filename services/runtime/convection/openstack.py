"""A small OpenStack client over aiohttp: Keystone v3 password auth, Nova servers, Neutron networks.

Generic enough for any adapter that reaches an OpenStack VIM. Every HTTP failure becomes one
of our exceptions, each with a stable `code` and whether a retry can help::

    OpenStackError                  code, message, retryable
     ├── InvalidCredentials         401 from Keystone                      (invalid_credentials)
     ├── VimUnreachable             nothing answers (refused, no route)     (vim_unreachable)
     ├── VimMisconfigured           not a Keystone v3 endpoint, bad URL    (vim_misconfigured)
     ├── QuotaExceeded              403 from Nova                          (quota_exceeded)
     ├── BadRequest                 400: unknown image, flavor, network    (bad_request)
     ├── NotFound                   404 on a resource                      (not_found)
     ├── Conflict                   409, e.g. a network still in use       (conflict)
     └── VimTransient               5xx, timeouts, dropped connections     (vim_unavailable)

Creates and deletes carry `X-Idempotency-Key` and the `X-Convection-*` ledger headers.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import aiohttp

from convection.tracing import http_client_span

_MAX_HEADER = 255


class OpenStackError(Exception):
    """Base of every OpenStack client error."""

    code = "vim_error"
    retryable = False

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class InvalidCredentials(OpenStackError):
    """Keystone refused the credentials."""

    code = "invalid_credentials"


class VimUnreachable(OpenStackError):
    """Nothing answers at the VIM's address: down for now, retry later."""

    code = "vim_unreachable"
    retryable = True


class VimMisconfigured(OpenStackError):
    """The address answers but is not a usable Keystone v3 endpoint: retrying cannot help."""

    code = "vim_misconfigured"


class QuotaExceeded(OpenStackError):
    """The project's quota does not allow the request."""

    code = "quota_exceeded"


class BadRequest(OpenStackError):
    """The VIM rejected the request (unknown image, flavor, network...)."""

    code = "bad_request"


class NotFound(OpenStackError):
    """The resource does not exist."""

    code = "not_found"


class Conflict(OpenStackError):
    """The resource is in a state that forbids the request (e.g. a network in use)."""

    code = "conflict"


class VimTransient(OpenStackError):
    """The VIM failed for now (5xx, timeout, dropped connection): retry later."""

    code = "vim_unavailable"
    retryable = True


@dataclass(frozen=True)
class CallContext:
    """The saga step behind a call, sent as ledger headers to the VIM."""

    saga_id: str | None = None
    step: str | None = None
    action: str | None = None

    def headers(self) -> dict[str, str]:
        """Return the `X-Convection-*` headers of this context."""
        pairs = {
            "X-Convection-Saga-Id": self.saga_id,
            "X-Convection-Step": self.step,
            "X-Convection-Action": self.action,
        }
        return {name: _fit(value) for name, value in pairs.items() if value}


def _fit(value: str) -> str:
    # The VIM caps header values; a long key is replaced by its digest, still unique and stable.
    if len(value) <= _MAX_HEADER:
        return value
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()


def error_message(body: Any, fallback: str) -> str:
    """Return the message of an OpenStack error body (`{"<fault>": {"message": ...}}`)."""
    if isinstance(body, dict):
        for value in body.values():
            if isinstance(value, dict) and isinstance(value.get("message"), str):
                return str(value["message"])
    return fallback


class OpenStackClient:
    """A client of one OpenStack project, authenticated with a password.

    Args:
        http: The aiohttp session to use (owned by the caller).
        auth_url: The Keystone v3 URL (e.g. `http://vim:5000/v3`).
        username: The user.
        password: The password.
        project: The project name.
        context: Ledger headers sent with every call.
        timeout: Seconds each HTTP call may take.
    """

    def __init__(
        self,
        http: aiohttp.ClientSession,
        *,
        auth_url: str,
        username: str,
        password: str,
        project: str,
        context: CallContext | None = None,
        timeout: float = 15.0,
    ) -> None:
        self._http = http
        self._auth_url = auth_url.rstrip("/")
        self._username = username
        self._password = password
        self._project = project
        self._context = context or CallContext()
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._token: str | None = None
        self._endpoints: dict[str, str] = {}
        self.project_id: str | None = None

    async def authenticate(self) -> str:
        """Get a project-scoped token and the catalog; return the project id."""
        body = {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {
                            "name": self._username,
                            "password": self._password,
                            "domain": {"name": "Default"},
                        }
                    },
                },
                "scope": {"project": {"name": self._project, "domain": {"name": "Default"}}},
            }
        }
        url = f"{self._auth_url}/auth/tokens"
        status, headers, reply = await self._send("POST", url, json=body, headers={})
        if status == 401:
            raise InvalidCredentials(error_message(reply, "invalid credentials"), status=status)
        if status >= 500:
            raise VimTransient(error_message(reply, f"identity answered {status}"), status=status)
        token = headers.get("X-Subject-Token")
        if status != 201 or token is None or not isinstance(reply, dict) or "token" not in reply:
            raise VimMisconfigured(
                f"{url} is not a Keystone v3 endpoint (HTTP {status})", status=status
            )
        self._token = token
        self.project_id = str(reply["token"]["project"]["id"])
        self._endpoints = {
            str(service["type"]): str(endpoint["url"]).rstrip("/")
            for service in reply["token"].get("catalog", [])
            for endpoint in service.get("endpoints", [])
            if endpoint.get("interface") == "public"
        }
        return self.project_id

    async def call(
        self,
        service: str,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> tuple[int, Any]:
        """Call `service` (catalog type); return (status, body) of a 2xx reply or raise."""
        if self._token is None:
            await self.authenticate()
        base = self._endpoints.get(service)
        if base is None:
            raise VimMisconfigured(f"the VIM's catalog has no {service} endpoint")
        headers = {"X-Auth-Token": self._token or "", **self._context.headers()}
        if idempotency_key is not None:
            headers["X-Idempotency-Key"] = _fit(idempotency_key)
        status, _, body = await self._send(
            method, f"{base}{path}", json=json, params=params, headers=headers
        )
        if status < 300:
            return status, body
        message = error_message(body, f"{method} {path} answered {status}")
        errors: dict[int, type[OpenStackError]] = {
            400: BadRequest,
            401: InvalidCredentials,
            403: QuotaExceeded,
            404: NotFound,
            409: Conflict,
        }
        if status >= 500 or status == 429:  # 429: rate limited, as transient as a 503
            raise VimTransient(message, status=status)
        raise errors.get(status, OpenStackError)(message, status=status)

    async def _send(
        self,
        method: str,
        url: str,
        *,
        json: Any,
        headers: dict[str, str],
        params: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], Any]:
        headers = dict(headers)
        try:
            # A CLIENT span per call; its traceparent goes with the request, so the VIM's
            # server span is its child.
            with http_client_span(method, url, headers) as span:
                async with self._http.request(
                    method, url, json=json, params=params, headers=headers, timeout=self._timeout
                ) as response:
                    span.set_attribute("http.response.status_code", response.status)
                    text = await response.text()
                    try:
                        body: Any = await response.json(content_type=None) if text else None
                    except ValueError:
                        body = text
                    return response.status, dict(response.headers), body
        except aiohttp.ClientConnectorError as exc:
            raise VimUnreachable(f"cannot connect to {url}: {exc}") from exc
        except aiohttp.InvalidURL as exc:
            raise VimMisconfigured(f"invalid VIM URL {url}") from exc
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise VimTransient(f"{method} {url}: {type(exc).__name__}: {exc}") from exc
