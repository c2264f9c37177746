"""Start-up failures are told apart by the driver's own error, however deeply it is wrapped."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy.exc import DBAPIError

from convection import startup

DB_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/convection"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672"
IN_RECOVERY = "the database system is not yet accepting connections"


class Error(Exception):
    """Stands for SQLAlchemy's asyncpg adapter error (`AsyncAdapt_asyncpg_dbapi.Error`)."""


def _wrapped(driver: BaseException) -> DBAPIError:
    # The chain SQLAlchemy builds for a failed connect: DBAPIError, whose `orig` is also its
    # `__cause__` (the adapter's error), whose own cause is the driver's exception.
    try:
        try:
            try:
                raise driver
            except type(driver) as exc:
                raise Error(str(exc)) from exc
        except Error as adapted:
            raise DBAPIError("SELECT 1", None, adapted) from adapted
    except DBAPIError as exc:
        return exc


@pytest.mark.parametrize(
    "driver",
    [
        asyncpg.exceptions.CannotConnectNowError(IN_RECOVERY),
        asyncpg.exceptions.TooManyConnectionsError("sorry, too many clients already"),
        ConnectionRefusedError(111, "Connect call failed"),
    ],
)
def test_a_database_still_starting_is_unavailable_not_a_crash(driver: BaseException) -> None:
    # Found by the chaos run: an adapter started during PostgreSQL's crash recovery died with
    # a traceback (exit 1) instead of the documented exit 4: the walk along the causes
    # stopped at the adapter's error, since `orig` and `__cause__` are the same object.
    failure = startup.classify(_wrapped(driver), db_url=DB_URL, amqp_url=AMQP_URL)
    assert failure is not None
    assert failure.code == startup.DATABASE
    assert "unreachable" in str(failure)
