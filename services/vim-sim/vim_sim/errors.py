"""Errors the simulator answers with, shaped like the OpenStack service each API imitates.

Handlers raise; one middleware turns the exception into the JSON body of the right service::

    VimSimError
    ├── ApiError                  an HTTP error reply; `status` and `body` are what the client gets
    │   │                         (`ApiError.plain`: {"error": {"code", "message"}})
    │   ├── KeystoneError         {"error": {"code", "title", "message"}}
    │   ├── NovaError             {"<fault>": {"code", "message"}}, e.g. itemNotFound
    │   ├── NeutronError          {"NeutronError": {"type", "message", "detail"}}
    │   └── InjectedFault         {"error": {"code", "message"}} from the fault injector
    └── SettingsError             the configuration cannot be used; raised before serving
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

UNAUTHORIZED_MESSAGE = "The request you have made requires authentication."


class VimSimError(Exception):
    """Base of every error the simulator raises on purpose."""


class SettingsError(VimSimError):
    """The configuration is invalid; the message says which setting and why."""


class ApiError(VimSimError):
    """An error reply: `status` is the HTTP status and `body` the JSON document sent."""

    def __init__(self, status: int, body: dict[str, Any], message: str) -> None:
        super().__init__(message)
        self.status = status
        self.body = body

    @classmethod
    def plain(cls, status: int, message: str) -> ApiError:
        """Return an error with the generic body `{"error": {"code", "message"}}`."""
        return cls(status, {"error": {"code": status, "message": message}}, message)


class KeystoneError(ApiError):
    """An Identity (Keystone v3) error: `{"error": {"code", "title", "message"}}`."""

    def __init__(self, status: int, title: str, message: str) -> None:
        body = {"error": {"code": status, "title": title, "message": message}}
        super().__init__(status, body, message)

    @classmethod
    def unauthorized(cls) -> KeystoneError:
        """Return the 401 that Keystone and keystonemiddleware send for bad credentials."""
        return cls(401, "Unauthorized", UNAUTHORIZED_MESSAGE)

    @classmethod
    def bad_request(cls, message: str) -> KeystoneError:
        """Return a 400 for a malformed authentication request."""
        return cls(400, "Bad Request", message)


# Nova names its fault bodies after the fault; these are the ones the simulator can send.
_NOVA_FAULTS = {400: "badRequest", 403: "forbidden", 404: "itemNotFound", 409: "conflictingRequest"}


class NovaError(ApiError):
    """A Compute (Nova) error: `{"badRequest"|"forbidden"|"itemNotFound"|...: {code, message}}`."""

    def __init__(self, status: int, message: str) -> None:
        fault = _NOVA_FAULTS.get(status, "computeFault")
        super().__init__(status, {fault: {"code": status, "message": message}}, message)

    @classmethod
    def bad_request(cls, message: str) -> NovaError:
        """Return a 400 `badRequest`."""
        return cls(400, message)

    @classmethod
    def forbidden(cls, message: str) -> NovaError:
        """Return a 403 `forbidden` (Nova's answer to an exceeded quota)."""
        return cls(403, message)

    @classmethod
    def not_found(cls, message: str) -> NovaError:
        """Return a 404 `itemNotFound`."""
        return cls(404, message)

    @classmethod
    def conflict(cls, message: str) -> NovaError:
        """Return a 409 `conflictingRequest`."""
        return cls(409, message)


class NeutronError(ApiError):
    """A Network (Neutron) error: `{"NeutronError": {"type", "message", "detail"}}`."""

    def __init__(self, status: int, error_type: str, message: str) -> None:
        body = {"NeutronError": {"type": error_type, "message": message, "detail": ""}}
        super().__init__(status, body, message)

    @classmethod
    def bad_request(cls, message: str) -> NeutronError:
        """Return a 400 `HTTPBadRequest`."""
        return cls(400, "HTTPBadRequest", message)

    @classmethod
    def not_found(cls, error_type: str, message: str) -> NeutronError:
        """Return a 404 such as `NetworkNotFound`."""
        return cls(404, error_type, message)

    @classmethod
    def conflict(cls, error_type: str, message: str) -> NeutronError:
        """Return a 409 such as `NetworkInUse`."""
        return cls(409, error_type, message)


class InjectedFault(ApiError):
    """A failure the fault injector decided on: `{"error": {"code", "message"}}`."""

    def __init__(self, status: int, operation: str) -> None:
        message = f"{_reason(status)} (injected)"
        super().__init__(status, {"error": {"code": status, "message": message}}, message)
        self.operation = operation


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
