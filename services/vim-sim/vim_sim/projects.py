"""Projects (VIM accounts): seeding from the settings, adding at run time, quota and locking."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vim_sim.errors import KeystoneError
from vim_sim.models import Project, Server
from vim_sim.settings import ProjectSpec


@dataclass(frozen=True)
class Usage:
    """What a project uses of its quota."""

    instances: int
    cores: int


async def seed_projects(
    sessions: async_sessionmaker[AsyncSession], specs: tuple[ProjectSpec, ...], now: datetime
) -> None:
    """Create the configured projects, or bring their credentials and quota up to date."""
    async with sessions.begin() as session:
        for spec in specs:
            project = await find_project(session, spec.name)
            if project is None:
                session.add(new_project(spec, now))
            else:
                project.user_name = spec.user
                project.password = spec.password
                project.quota_cores = spec.quota.cores
                project.quota_instances = spec.quota.instances


def new_project(spec: ProjectSpec, now: datetime) -> Project:
    """Build the row of a new project (ids look like Keystone's: 32 hex digits)."""
    return Project(
        id=uuid.uuid4().hex,
        name=spec.name,
        user_name=spec.user,
        password=spec.password,
        quota_cores=spec.quota.cores,
        quota_instances=spec.quota.instances,
        revision=0,
        created_at=now,
    )


async def find_project(session: AsyncSession, ref: str) -> Project | None:
    """Return the project whose name or id is `ref`."""
    result = await session.execute(
        select(Project).where((Project.name == ref) | (Project.id == ref))
    )
    return result.scalars().first()


async def lock_project(session: AsyncSession, project_id: str) -> Project:
    """Serialise writes to one project's resources until the transaction ends; return it.

    An UPDATE as the transaction's first statement takes PostgreSQL's row lock and SQLite's
    write lock alike, so a quota check and the insert it allows cannot interleave with another's.
    """
    await session.execute(
        update(Project).where(Project.id == project_id).values(revision=Project.revision + 1)
    )
    project = await session.get(Project, project_id, populate_existing=True)
    if project is None:
        # The token outlived its project: answer as for any other stale token.
        raise KeystoneError.unauthorized()
    return project


async def usage(session: AsyncSession, project_id: str) -> Usage:
    """Count the servers and cores a project uses now."""
    result = await session.execute(
        select(func.count(Server.id), func.coalesce(func.sum(Server.vcpus), 0)).where(
            Server.project_id == project_id
        )
    )
    instances, cores = result.one()
    return Usage(instances=int(instances), cores=int(cores))


def project_view(project: Project, used: Usage | None = None) -> dict[str, object]:
    """Render a project for the admin API (without its password)."""
    view: dict[str, object] = {
        "id": project.id,
        "name": project.name,
        "user": project.user_name,
        "quota": {"cores": project.quota_cores, "instances": project.quota_instances},
    }
    if used is not None:
        view["usage"] = {"cores": used.cores, "instances": used.instances}
    return view
