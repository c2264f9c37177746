"""Why a service could not start, as one line for people and an exit code for scripts.

The coordinator and every participant process turn a failure while they start into a
`StartupFailure`: bad settings, a database or a broker that is unreachable, missing, or
refuses the credentials. The codes are the same in every service (each documents its own):

    2  bad settings (a variable is missing or malformed, a URL that does not parse)
    3  the database schema is behind the code (the coordinator: run `convection db upgrade`)
    4  the database is unavailable: unreachable, no such database, credentials refused
    5  the broker is unavailable: unreachable, no such vhost, credentials refused

URLs are never echoed whole: they may carry passwords; the messages name host, port,
database or vhost instead.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator
from urllib.parse import unquote, urlsplit

SETTINGS = 2
"""Exit code: bad settings."""
SCHEMA = 3
"""Exit code: the database schema is behind the code."""
DATABASE = 4
"""Exit code: the database is unavailable."""
BROKER = 5
"""Exit code: the broker is unavailable."""


class StartupFailure(Exception):
    """A service cannot start; `code` is its exit code, the message one line saying why."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _chain(exc: BaseException) -> list[BaseException]:
    """Return `exc` and its causes, innermost first: the driver's own words are clearest."""
    return list(_outward(exc))[::-1]


def _outward(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        after = current.__cause__ or current.__context__
        orig = getattr(current, "orig", None)
        # SQLAlchemy's DBAPIError keeps the driver's error as `orig`, usually its cause too:
        # walk on through it then, for its own causes hold the driver's words.
        if isinstance(orig, BaseException) and orig is not after and id(orig) not in seen:
            if after is None:
                after = orig
            else:
                yield orig
                seen.add(id(orig))
        current = after


_WRAPPER = re.compile(r"^\([\w.]+\) ")
"""SQLAlchemy's prefix naming the driver's exception class: noise in a message for people."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return _WRAPPER.sub("", text.splitlines()[0])


def database_where(url: str) -> str:
    """Return where a database URL points, without its password: host:port/name or a file."""
    parts = urlsplit(url)
    if parts.scheme.startswith("sqlite"):
        return f"the SQLite file {parts.path.removeprefix('/') or '(memory)'}"
    return f"{parts.hostname or 'localhost'}:{_port(url, 5432)}/{parts.path.removeprefix('/')}"


def _port(url: str, default: int) -> str:
    try:
        return str(urlsplit(url).port or default)
    except ValueError:
        return "(bad port)"


def broker_where(url: str) -> str:
    """Return where an AMQP URL points, without its password: host:port, vhost."""
    parts = urlsplit(url)
    vhost = unquote(parts.path.removeprefix("/")) or "/"
    return f"{parts.hostname or 'localhost'}:{_port(url, 5672)}, vhost {vhost!r}"


def check_url(url: str) -> None:
    """Raise ValueError unless `url`'s host and port parse (the port in 0..65535)."""
    try:
        urlsplit(url).port  # noqa: B018 - parsing the port is the check
    except ValueError as exc:
        raise ValueError(f"does not parse: {exc}") from None


def database_failure(exc: BaseException, url: str) -> StartupFailure | None:
    """Return the start-up failure a database error means, or None if it is not one."""
    where = database_where(url)
    for cause in _chain(exc):
        name = type(cause).__name__
        text = _first_line(cause)
        if name == "InvalidCatalogNameError" or ("database" in text and "does not exist" in text):
            return StartupFailure(DATABASE, f"no such database at {where}: {text}")
        if name in ("InvalidPasswordError", "InvalidAuthorizationSpecificationError") or (
            "role" in text and "does not exist" in text
        ):
            return StartupFailure(DATABASE, f"the database at {where} refused the login: {text}")
        if "unable to open database file" in text:
            return StartupFailure(DATABASE, f"cannot open {where}: {text}")
        if isinstance(cause, OSError | TimeoutError) or name in (
            "ConnectionDoesNotExistError",
            "CannotConnectNowError",
            "TooManyConnectionsError",
        ):
            return StartupFailure(DATABASE, f"the database at {where} is unreachable: {text}")
    return None


def broker_failure(exc: BaseException, url: str) -> StartupFailure | None:
    """Return the start-up failure a broker error means, or None if it is not one."""
    from convection.transport.base import TransportError

    where = broker_where(url)
    for cause in _chain(exc):
        name = type(cause).__name__
        text = _first_line(cause)
        # RabbitMQ answers an unknown (or forbidden) vhost by closing the connection at
        # Connection.Open (NOT_ALLOWED); aiormq reports only that the close frame came.
        if "NOT_ALLOWED" in text or "Connection.Close" in text:
            return StartupFailure(
                BROKER,
                f"the broker at {where} refused the vhost (NOT_ALLOWED: it does not exist, or "
                "the user has no permission on it)",
            )
        if "ACCESS_REFUSED" in text or "Authentication" in name:
            return StartupFailure(BROKER, f"the broker at {where} refused the login: {text}")
        if isinstance(cause, OSError | TimeoutError):
            return StartupFailure(BROKER, f"the broker at {where} is unreachable: {text}")
    if isinstance(exc, TransportError):
        return StartupFailure(BROKER, f"the broker at {where} is unusable: {_first_line(exc)}")
    return None


def classify(exc: BaseException, *, db_url: str, amqp_url: str) -> StartupFailure | None:
    """Return what a failure while starting means (broker, database, settings), or None."""
    from convection.transport.base import TransportError

    if isinstance(exc, StartupFailure):
        return exc
    if isinstance(exc, TransportError):
        return broker_failure(exc, amqp_url)
    if any(type(c).__name__ == "ArgumentError" for c in _chain(exc)):
        return StartupFailure(SETTINGS, f"CONVECTION_DB_URL does not parse: {_first_line(exc)}")
    return database_failure(exc, db_url)


_CHATTY = {
    "aio_pika.robust_connection": logging.WARNING,
    "aiormq.connection": logging.CRITICAL,
    "alembic.runtime.migration": logging.WARNING,
}


@contextlib.contextmanager
def quiet_connect() -> Iterator[None]:
    """Silence aio-pika's "reconnecting" and alembic's context notes while a service starts.

    A failed first connection is reported once, as a `StartupFailure`; the robust
    connection's plans to reconnect (it won't) and the schema check's chatter would only
    add lines around the one that matters.
    """
    chatty = [logging.getLogger(name) for name in _CHATTY]
    levels = [logger.level for logger in chatty]
    for logger in chatty:
        logger.setLevel(_CHATTY[logger.name])
    try:
        yield
    finally:
        for logger, level in zip(chatty, levels, strict=True):
            logger.setLevel(level)
