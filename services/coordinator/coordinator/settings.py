"""The coordinator's configuration: environment variables with the CONVECTION_ prefix.

Read once, in `__main__` (or passed in by whoever embeds a Coordinator); invalid values
stop the process at start with a message naming the variable.
"""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from convection.startup import check_url


class CoordinatorSettings(BaseSettings):
    """Settings of one coordinator process."""

    model_config = SettingsConfigDict(env_prefix="CONVECTION_", frozen=True, extra="ignore")

    amqp_url: str = Field(description="amqp://user:password@host:port/vhost, or memory://")
    db_url: str = Field(description="postgresql+asyncpg://... or sqlite+aiosqlite:///path")
    prefetch: int = Field(default=32, ge=1, le=10_000)
    group_commit: int = Field(
        default=16,
        ge=1,
        le=1000,
        description="most starts and replies that share one transaction when they arrive "
        "while others are being written (group commit); 1 writes each in its own",
    )
    group_lanes: int = Field(
        default=3,
        ge=1,
        le=100,
        description="group transactions in flight at once (keep it below db_pool_size: the "
        "relay and the timers need connections too)",
    )
    outbox_batch: int = Field(default=100, ge=1, le=10_000)
    outbox_poll_interval: float = Field(default=1.0, gt=0, le=60)
    outbox_max_attempts: int = Field(default=10, ge=1)
    outbox_retention_seconds: float = Field(
        default=0.0,
        ge=0,
        description="keep sent outbox rows this long, for inspection; 0 deletes each row once "
        "the broker confirmed it (nothing in Convection reads a sent row)",
    )
    inbox_retention_seconds: float = Field(default=7 * 24 * 3600.0, ge=60)
    timer_interval: float = Field(default=1.0, gt=0, le=300)
    timer_batch: int = Field(default=100, ge=1, le=10_000)
    publish_timeout: float = Field(default=5.0, gt=0, le=120)
    stalled_transaction_seconds: float = Field(
        default=30.0,
        ge=1,
        le=3600,
        description="end another replica's transaction once it has waited this long for its "
        "client (a frozen replica holding row locks); it rolls back, nothing is lost",
    )
    db_pool_size: int = Field(default=5, ge=1, le=200)
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    check_schema: bool = True
    collect_dead_letters: bool = Field(
        default=True,
        description="consume the dead-letter queues into the dead_letters table (false leaves "
        "them to other tools)",
    )
    log_level: str = "INFO"
    vault_public_key: str | None = Field(
        default=None,
        description="the vault's public key: secrets in saga inputs are sealed with it on "
        "arrival (`convection vault keygen`); needed when a loaded saga type has secrets",
    )
    service_users: str | None = Field(
        default=None,
        description="the broker user of each participant service, `vim=convection-vim,ro=...`: "
        "a reply is accepted only from the user of its step's service (or this coordinator's "
        "own, for replays); unset accepts replies from anyone (docs/security.md)",
    )
    sagas: str | None = Field(
        default=None,
        description="saga packages to run: entry-point names or module:attr, comma-separated "
        "(unset: every installed convection.sagas entry point)",
    )
    failpoint: str | None = Field(
        default=None,
        description="crash on purpose at named points (tests): see coordinator.failpoints",
    )

    @field_validator("amqp_url")
    @classmethod
    def _amqp_scheme(cls, value: str) -> str:
        if not value.startswith(("amqp://", "amqps://", "memory://")):
            raise ValueError("must start with amqp://, amqps:// or memory://")
        check_url(value)
        return value

    @field_validator("failpoint")
    @classmethod
    def _known_failpoint(cls, value: str | None) -> str | None:
        from convection.failpoints import Failpoints
        from coordinator.failpoints import KNOWN

        Failpoints(value, KNOWN)  # raises (a ValueError) naming what is wrong
        return value or None

    @field_validator("service_users")
    @classmethod
    def _pairs(cls, value: str | None) -> str | None:
        if value:
            parse_service_users(value)  # raises a ValueError naming the bad pair
        return value or None

    def service_user_map(self) -> dict[str, str] | None:
        """Return the broker user of each service, or None when replies are not checked."""
        return parse_service_users(self.service_users) if self.service_users else None

    @field_validator("db_url")
    @classmethod
    def _db_scheme(cls, value: str) -> str:
        if not value.startswith(("postgresql", "postgres", "sqlite")):
            raise ValueError("must be a postgresql:// or sqlite:// URL")
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            make_url(value)
        except (ArgumentError, ValueError):
            raise ValueError("does not parse as a database URL") from None
        check_url(value)
        return value


def parse_service_users(text: str) -> dict[str, str]:
    """Parse `service=user,service=user` into a mapping; raise ValueError on a bad pair."""
    users: dict[str, str] = {}
    for pair in text.split(","):
        service, sep, user = pair.strip().partition("=")
        if not sep or not service.strip() or not user.strip():
            raise ValueError(f"{pair.strip()!r} is not service=user")
        if service.strip() in users:
            raise ValueError(f"service {service.strip()!r} is given twice")
        users[service.strip()] = user.strip()
    return users
