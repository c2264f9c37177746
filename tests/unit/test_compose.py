"""docker-compose.yml is parsed, not run (no Docker engine here): every service the code needs
is there, built from the one Dockerfile, with its environment, health check and start order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

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
