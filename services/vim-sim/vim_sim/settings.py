"""Settings of the simulator, read once from the environment by `__main__`.

Environment variables carry the prefix `CONVECTION_VIM_SIM_` (`CONVECTION_VIM_SIM_PORT=6080`,
`CONVECTION_VIM_SIM_PROJECTS='[{"name": "osm", ...}]'`), except the database URL, which is the
project-wide `CONVECTION_DB_URL`.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from vim_sim.errors import SettingsError
from vim_sim.faults import FaultConfig

_Name = Annotated[str, Field(min_length=1, max_length=255)]


class Quota(BaseModel):
    """Limits of one project, counted like Nova counts them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cores: Annotated[int, Field(ge=0)] = 20
    instances: Annotated[int, Field(ge=0)] = 10


class ProjectSpec(BaseModel):
    """A project (one VIM account) with its single user and its quota."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: _Name
    user: _Name
    password: _Name
    quota: Quota = Quota()


def _default_projects() -> tuple[ProjectSpec, ...]:
    # Well-known simulator credentials, like devstack's; nothing real is protected by them.
    return (
        ProjectSpec(name="admin", user="admin", password="admin"),  # noqa: S106
        ProjectSpec(name="osm", user="osm", password="osm"),  # noqa: S106
    )


class VimSimSettings(BaseSettings):
    """Configuration of one simulator; frozen once read.

    Attributes:
        host: Address to listen on.
        port: Port to listen on; 0 picks a free one.
        db_url: SQLAlchemy URL of the database (`CONVECTION_DB_URL`).
        boot_seconds: Time a server stays in BUILD before it is ACTIVE.
        token_ttl_seconds: Lifetime of an identity token.
        projects: Projects created (or updated) at start.
        faults: Faults in force from the start.
    """

    model_config = SettingsConfigDict(
        env_prefix="CONVECTION_VIM_SIM_", frozen=True, extra="forbid", validate_by_name=True
    )

    host: _Name = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 6080
    db_url: Annotated[str, Field(min_length=1, validation_alias="CONVECTION_DB_URL")] = (
        "sqlite+aiosqlite:///./vim-sim.db"
    )
    boot_seconds: Annotated[float, Field(ge=0)] = 2.0
    token_ttl_seconds: Annotated[float, Field(gt=0)] = 3600.0
    projects: tuple[ProjectSpec, ...] = Field(default_factory=_default_projects)
    faults: FaultConfig = FaultConfig()

    @field_validator("db_url")
    @classmethod
    def _parsable_url(cls, value: str) -> str:
        try:
            make_url(value)
        except ArgumentError as exc:
            raise ValueError(f"not a database URL: {value!r}") from exc
        return value

    @field_validator("projects")
    @classmethod
    def _unique_names(cls, value: tuple[ProjectSpec, ...]) -> tuple[ProjectSpec, ...]:
        names = [project.name for project in value]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"duplicate project name(s): {', '.join(duplicates)}")
        return value


def load_settings() -> VimSimSettings:
    """Read the settings from the environment, or raise `SettingsError` saying what is wrong."""
    try:
        return VimSimSettings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'settings'}: {error['msg']}"
            for error in exc.errors()
        )
        raise SettingsError(f"invalid vim-sim settings: {problems}") from exc
