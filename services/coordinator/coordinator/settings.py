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
    outbox_batch: int = Field(default=100, ge=1, le=10_000)
    outbox_poll_interval: float = Field(default=1.0, gt=0, le=60)
    outbox_max_attempts: int = Field(default=10, ge=1)
    outbox_retention_seconds: float = Field(default=3600.0, ge=0)
    inbox_retention_seconds: float = Field(default=7 * 24 * 3600.0, ge=60)
    timer_interval: float = Field(default=1.0, gt=0, le=300)
    timer_batch: int = Field(default=100, ge=1, le=10_000)
    publish_timeout: float = Field(default=5.0, gt=0, le=120)
    db_pool_size: int = Field(default=5, ge=1, le=200)
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    check_schema: bool = True
    log_level: str = "INFO"
    sagas: str | None = Field(
        default=None,
        description="saga packages to run: entry-point names or module:attr, comma-separated "
        "(unset: every installed convection.sagas entry point)",
    )
    failpoint: str | None = Field(
        default=None, description="crash on purpose at a named point (tests): relay.before_publish"
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
        from coordinator.relay import FAILPOINTS

        if value and value not in FAILPOINTS:
            raise ValueError(f"unknown failpoint; known: {', '.join(sorted(FAILPOINTS))}")
        return value or None

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
