"""docker-compose.yml is parsed, not run (no Docker engine here): every service the code needs
is there, built from the one Dockerfile, with its environment, health check and start order.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from coordinator.broker_setup import COORDINATOR_USER, grants, password_hash, service_user

ROOT = Path(__file__).resolve().parents[2]
CONVECTION = {
    "coordinator-1": "coordinator",
    "coordinator-2": "coordinator",
    "vim-adapter": "vim_adapter",
    "ro-adapter": "ro_adapter",
    "lcm-adapter": "lcm_adapter",
    "vim-sim": "vim_sim",
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services: dict[str, Any] = data["services"]
    return services


def test_every_service_is_there(compose: dict[str, Any]) -> None:
    assert set(compose) == {"rabbitmq", "postgres", "jaeger", "migrate", *CONVECTION}


def test_infrastructure_images_and_health(compose: dict[str, Any]) -> None:
    assert "management" in compose["rabbitmq"]["image"]
    assert compose["rabbitmq"]["healthcheck"]["test"][1:] == ["rabbitmq-diagnostics", "-q", "ping"]
    pg = compose["postgres"]["healthcheck"]["test"]
    assert "pg_isready" in pg
    assert pg[pg.index("-h") + 1] == "127.0.0.1"  # without -h it probes the socket, too early
    jaeger = compose["jaeger"]
    assert jaeger["image"].startswith("jaegertracing/jaeger:2")  # v1 is end-of-life
    assert {"16686:16686", "4317:4317", "4318:4318"} <= set(jaeger["ports"])


@pytest.mark.parametrize("name", sorted(CONVECTION))
def test_convection_services(compose: dict[str, Any], name: str) -> None:
    svc = compose[name]
    assert svc["build"] == "."  # one Dockerfile for every service
    assert svc["command"][:3] == ["python", "-m", CONVECTION[name]]
    env = svc["environment"]
    assert env["CONVECTION_DB_URL"].startswith("postgresql+asyncpg://")
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4318"
    assert env["OTEL_SERVICE_NAME"]
    if name != "vim-sim":
        assert env["CONVECTION_AMQP_URL"].startswith("amqp://")
        assert svc["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert svc["depends_on"]["rabbitmq"]["condition"] == "service_healthy"
    assert svc["healthcheck"]["test"][0] == "CMD"


def test_migration_runs_once_before_everything(compose: dict[str, Any]) -> None:
    migrate = compose["migrate"]
    assert migrate["command"] == ["convection", "db", "upgrade"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_adapters_reach_the_simulator_at_the_examples_address(compose: dict[str, Any]) -> None:
    for name in ("vim-adapter", "ro-adapter"):
        assert compose[name]["network_mode"] == "service:vim-sim"
        assert compose[name]["depends_on"]["vim-sim"]["condition"] == "service_healthy"
    assert compose["vim-sim"]["environment"]["CONVECTION_VIM_SIM_PORT"] == "6080"
    assert compose["vim-sim"]["environment"]["CONVECTION_VIM_SIM_HOST"] == "0.0.0.0"


def test_dockerfile_installs_the_locked_workspace() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "uv sync --frozen --all-packages" in text


def test_each_process_has_its_own_broker_user_with_only_its_part() -> None:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services, configs = data["services"], data["configs"]
    definitions = json.loads(configs["rabbitmq-definitions"]["content"])
    conf = configs["rabbitmq-conf"]["content"]
    assert "load_definitions = /etc/rabbitmq/convection-definitions.json" in conf
    mounted = {c["source"]: c["target"] for c in services["rabbitmq"]["configs"]}
    assert mounted["rabbitmq-definitions"] == "/etc/rabbitmq/convection-definitions.json"
    # The same grants as `convection broker setup`, and each hash opens with the dev password.
    expected = {(g.user, g.configure, g.write, g.read) for g in grants(["vim", "ro", "lcm"])}
    granted = {
        (p["user"], p["configure"], p["write"], p["read"]) for p in definitions["permissions"]
    }
    assert expected <= granted
    assert granted - expected == {("convection-admin", ".*", ".*", ".*")}
    for user in definitions["users"]:
        raw = base64.b64decode(user["password_hash"])
        assert user["password_hash"] == password_hash(user["name"], raw[:4]), user["name"]
    users = {}
    for name in CONVECTION:
        url = services[name]["environment"].get("CONVECTION_AMQP_URL")
        if url:
            users[name] = urlsplit(url).username
    assert users == {
        "coordinator-1": COORDINATOR_USER,
        "coordinator-2": COORDINATOR_USER,
        "vim-adapter": "convection-vim",
        "ro-adapter": "convection-ro",
        "lcm-adapter": "convection-lcm",
    }
    coordinator = services["coordinator-1"]["environment"]
    assert coordinator["CONVECTION_SERVICE_USERS"] == ",".join(
        f"{s}={service_user(s)}" for s in ("vim", "ro", "lcm")
    )
    for name in ("vim-adapter", "ro-adapter", "lcm-adapter"):
        env = services[name]["environment"]
        assert env["CONVECTION_COORDINATOR_USER"] == COORDINATOR_USER
        assert env["CONVECTION_DECLARE_TOPOLOGY"] == "false"
        assert services[name]["depends_on"]["coordinator-1"]["condition"] == "service_healthy"
