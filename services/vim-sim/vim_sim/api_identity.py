"""Identity, Keystone v3 flavoured: password authentication to a project-scoped token.

The token's catalog points at this simulator's compute, network and image APIs, built from
the Host the client used, so a client that follows the catalog needs nothing else configured.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import datetime, timedelta

from aiohttp import web
from pydantic import BaseModel
from sqlalchemy import select

from vim_sim.errors import KeystoneError
from vim_sim.models import Project, Token
from vim_sim.projects import find_project
from vim_sim.routing import (
    COMPUTE_PATH,
    IDENTITY_PATH,
    IMAGE_PATH,
    NETWORK_PATH,
    Route,
    base_url,
    read_model,
)
from vim_sim.state import Caller, SimState

REGION = "RegionOne"
_DOMAIN = {"id": "default", "name": "Default"}


class _Ref(BaseModel):
    name: str | None = None
    id: str | None = None


class _User(BaseModel):
    name: str
    password: str
    domain: _Ref | None = None


class _Password(BaseModel):
    user: _User


class _Identity(BaseModel):
    methods: list[str]
    password: _Password


class _ProjectRef(_Ref):
    domain: _Ref | None = None


class _Scope(BaseModel):
    project: _ProjectRef


class _Auth(BaseModel):
    identity: _Identity
    scope: _Scope


class AuthRequest(BaseModel):
    """The body of `POST /identity/v3/auth/tokens` (password method, project scope)."""

    auth: _Auth


class IdentityApi:
    """Issues and checks tokens."""

    def __init__(self, state: SimState) -> None:
        self._state = state

    def routes(self) -> list[Route]:
        """Return the identity endpoints."""
        return [
            Route("POST", f"{IDENTITY_PATH}/auth/tokens", self.issue_token, "authenticate", False)
        ]

    async def issue_token(self, request: web.Request) -> web.Response:
        """Authenticate a user with a password; 201 with `X-Subject-Token` or 401."""
        body = await read_model(request, AuthRequest, KeystoneError.bad_request)
        identity, scope = body.auth.identity, body.auth.scope.project
        if "password" not in identity.methods:
            raise KeystoneError.bad_request("Only the password method is supported.")
        ref = scope.id or scope.name
        if ref is None:
            raise KeystoneError.bad_request("auth.scope.project needs a name or an id.")
        now = self._state.clock()
        expires_at = now + timedelta(seconds=self._state.settings.token_ttl_seconds)
        token = secrets.token_hex(32)
        async with self._state.sessions.begin() as session:
            project = await find_project(session, ref)
            if project is None or not _credentials_match(project, identity.password.user):
                raise KeystoneError.unauthorized()
            session.add(
                Token(token=token, project_id=project.id, issued_at=now, expires_at=expires_at)
            )
        reply = {"token": _token_body(project, now, expires_at, base_url(request))}
        return web.json_response(reply, status=201, headers={"X-Subject-Token": token})

    async def authenticate(self, token: str | None) -> Caller:
        """Return who holds `token`, or raise the 401 every API sends for a bad token."""
        if not token:
            raise KeystoneError.unauthorized()
        async with self._state.sessions() as session:
            result = await session.execute(
                select(Project, Token.expires_at)
                .join(Token, Token.project_id == Project.id)
                .where(Token.token == token)
            )
            row = result.first()
        if row is None or row[1] <= self._state.clock():
            raise KeystoneError.unauthorized()
        project = row[0]
        return Caller(project_id=project.id, project_name=project.name, user_name=project.user_name)


def _credentials_match(project: Project, user: _User) -> bool:
    # Constant-time compares, so the simulator does not teach clients bad habits by example.
    return hmac.compare_digest(user.name, project.user_name) & hmac.compare_digest(
        user.password, project.password
    )


def _timestamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"


def _token_body(
    project: Project, now: datetime, expires_at: datetime, url: str
) -> dict[str, object]:
    return {
        "methods": ["password"],
        "issued_at": _timestamp(now),
        "expires_at": _timestamp(expires_at),
        "user": {"id": f"user-{project.id}", "name": project.user_name, "domain": _DOMAIN},
        "project": {"id": project.id, "name": project.name, "domain": _DOMAIN},
        "roles": [{"id": "member", "name": "member"}, {"id": "admin", "name": "admin"}],
        "is_domain": False,
        "catalog": [
            _service("compute", "nova", f"{url}{COMPUTE_PATH}"),
            _service("network", "neutron", f"{url}{NETWORK_PATH}"),
            _service("image", "glance", f"{url}{IMAGE_PATH}"),
            _service("identity", "keystone", f"{url}{IDENTITY_PATH}"),
        ],
    }


def _service(kind: str, name: str, url: str) -> dict[str, object]:
    return {
        "id": f"{name}-service",
        "type": kind,
        "name": name,
        "endpoints": [
            {
                "id": f"{name}-{interface}",
                "interface": interface,
                "region": REGION,
                "region_id": REGION,
                "url": url,
            }
            for interface in ("public", "internal", "admin")
        ],
    }
