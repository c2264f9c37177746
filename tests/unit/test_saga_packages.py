"""Saga packages: loaded by entry point or reference, checked together, versioned."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from coordinator.core import Engine, LockGranted
from coordinator.definitions import load_registry
from coordinator.errors import DefinitionMissing
from sagas import GROUP, Registry, SagaPackageError, osm_registry, schemas
from tests.sagapkgs import toy
from tests.unit.world import T0, World

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples" / "order-saga"))

from order_saga import sagas as order  # noqa: E402


def _eps(**refs: str) -> list[EntryPoint]:
    return [EntryPoint(name, value, GROUP) for name, value in refs.items()]


BROKEN = {
    "duplicate type": (
        "toy,again",
        ["package '?:again'", "saga 'toy.poke'", "unique saga types", "package '?:toy'"],
    ),
    "action without result model": (
        "tests.sagapkgs.no_result:SAGAS",
        [
            "package 'tests.sagapkgs.no_result:SAGAS'",
            "saga 'toy.shout'",
            "step 'shout'",
            "the action has a result model",
        ],
    ),
    "unknown step in uses": (
        "tests.sagapkgs.unknown_uses:SAGAS",
        [
            "package 'tests.sagapkgs.unknown_uses:SAGAS'",
            "saga 'toy.uses'",
            "step 'second'",
            "a payload builder reads earlier steps only",
            "'frist', which is unknown",
        ],
    ),
    "service no participant could own": (
        "tests.sagapkgs.bad_service:SAGAS",
        [
            "package 'tests.sagapkgs.bad_service:SAGAS'",
            "saga 'toy.nowhere'",
            "step 'charge'",
            "the action's service is a name a participant can own",
        ],
    ),
}
FOUND = _eps(toy="tests.sagapkgs.toy:SAGAS", again="tests.sagapkgs.toy_again:SAGAS")


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_package_is_named_with_its_saga_step_and_rule(case: str) -> None:
    selection, needles = BROKEN[case]
    with pytest.raises(SagaPackageError) as caught:
        load_registry(selection, found=lambda: FOUND)
    for needle in needles:
        assert needle in str(caught.value), (needle, str(caught.value))


# Four coordinator processes start one after another: seconds on a quiet machine, minutes on
# a loaded one, so the suite's default bound does not fit.
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_broken_package_stops_the_coordinator_at_start_with_exit_2() -> None:
    env = {
        **os.environ,
        "CONVECTION_AMQP_URL": "amqp://guest:guest@127.0.0.1:1/",
        "CONVECTION_DB_URL": "postgresql+asyncpg://nobody@127.0.0.1:1/none",
    }
    by_reference = {
        **BROKEN,
        "duplicate type": (
            "tests.sagapkgs.toy:SAGAS,tests.sagapkgs.toy_again:SAGAS",
            [
                "package 'tests.sagapkgs.toy_again:SAGAS'",
                "saga 'toy.poke'",
                "unique saga types",
                "also defined by package 'tests.sagapkgs.toy:SAGAS'",
            ],
        ),
    }
    for case in sorted(by_reference):
        selection, needles = by_reference[case]
        done = subprocess.run(
            [sys.executable, "-m", "coordinator"],
            env={**env, "CONVECTION_SAGAS": selection},
            capture_output=True,
            text=True,
            timeout=150,
            check=False,
            cwd=ROOT,
        )
        assert done.returncode == 2, (case, done.stderr)
        assert "Traceback" not in done.stderr
        for needle in needles:
            assert needle in done.stderr, (needle, done.stderr)


def test_selection_by_name_and_reference_and_unknown_names() -> None:
    registry = load_registry("toy", found=lambda: FOUND)
    assert registry.versions("toy.poke") == (1, 2)
    both = load_registry("toy,sagas:OSM_SAGAS", found=lambda: FOUND)
    assert {"toy.poke", "ns.instantiate"} <= set(both.names())
    with pytest.raises(SagaPackageError, match=r"no entry point 'nope'.*installed: again, toy"):
        load_registry("nope", found=lambda: FOUND)
    with pytest.raises(SagaPackageError, match=r"the package imports.*ModuleNotFoundError"):
        load_registry("no.such.module:X", found=lambda: FOUND)
    with pytest.raises(SagaPackageError, match="names a Registry or Saga definitions"):
        load_registry("tests.sagapkgs.common:Input", found=lambda: FOUND)


def test_unset_means_every_installed_package() -> None:
    registry = load_registry(None)
    assert set(osm_registry().names()) <= set(registry.names())


def test_the_catalogue_and_the_services_come_from_the_definitions() -> None:
    registry = Registry(toy.SAGAS)
    assert registry.services() == ("toy",)
    assert set(registry.actions()) == {"toy.poke", "toy.unpoke"}
    assert osm_registry().services() == ("lcm", "ro", "vim")
    assert "lcm.delete-ns-record" in osm_registry().actions()


def test_a_new_instance_starts_on_the_newest_version_and_stays_on_its_own() -> None:
    both = Engine(Registry(toy.SAGAS))
    decision = both.start(saga_type="toy.poke", saga_id="p1", input={}, at=T0)
    assert decision.state.definition_version == 2
    assert decision.history[0].detail["version"] == 2
    v1_only = Engine(Registry([toy.V1]))
    old = v1_only.start(saga_type="toy.poke", saga_id="p0", input={}, at=T0).state
    assert old.definition_version == 1
    assert both.knows(old)
    v2_only = Engine(Registry([toy.V2]))
    assert not v2_only.knows(old)
    with pytest.raises(DefinitionMissing, match=r"definition_missing: toy\.poke@1"):
        v2_only.decide(old, LockGranted(at=T0))


def test_a_static_parallel_group_runs_and_its_members_results_are_used() -> None:
    world = World.with_registry(Registry(order.ORDER_SAGAS))
    data = {
        "order_id": "o-1",
        "sku": "widget",
        "quantity": 2,
        "card": "4242424242424242",
        "amount_cents": 500,
        "address": "1 Main St",
    }
    world.start("order.place", "o-1", data)
    first = {c.step for c in world.outbox}
    assert first == {"reserve", "charge"}, "both members of the group start at once"
    world.drain()
    state = world.sagas["o-1"]
    assert state.status == "completed"
    ship = next(c for c in world.sent if c.step == "ship")
    assert ship.payload["reservation_id"] == "o-1"


def test_the_osm_input_schemas_on_disk_match_the_models() -> None:
    wanted = schemas.input_schemas(osm_registry())
    on_disk = {p.name for p in schemas.SCHEMA_DIR.glob("*.json")}
    assert on_disk == set(wanted), "run `uv run python -m sagas.schemas` and commit"
    for name, schema in wanted.items():
        assert json.loads((schemas.SCHEMA_DIR / name).read_text()) == schema, name


def test_convection_sagas_lists_types_versions_steps_locks_and_inputs() -> None:
    env = {**os.environ, "CONVECTION_SAGAS": "sagas:OSM_SAGAS,tests.sagapkgs.toy:SAGAS"}
    run = [sys.executable, "-m", "convection", "sagas"]
    done = subprocess.run(
        [*run, "-o", "json"], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    types = {t["saga_type"]: t for t in json.loads(done.stdout)["saga_types"]}
    toy_type = types["toy.poke"]
    assert toy_type["latest"] == 2
    assert [v["version"] for v in toy_type["versions"]] == [2, 1]
    inst = types["ns.instantiate"]["versions"][0]
    assert inst["locks"] == {
        "resources": [
            {"resource": "ns:<ns_id>", "mode": "exclusive"},
            {"resource": "vim:<vim_account_id>", "mode": "shared"},
        ],
        "policy": "wait",
        "supersedes": [],
        "supersede_queued": "keep",
    }
    deploy = next(s for s in inst["steps"] if s["name"] == "deploy")
    assert (deploy["group"], deploy["grouping"], deploy["service"]) == ("vdus", "for_each", "ro")
    assert (deploy["action"], deploy["compensation"]) == ("ro.deploy-vdus", "ro.delete-vdus")
    assert "vnfs" in inst["input_schema"]["properties"]
    text = subprocess.run(run, env=env, capture_output=True, text=True, timeout=60, check=True)
    assert "toy.poke  (newest v2; loaded v2, v1)" in text.stdout
    broken = subprocess.run(
        [*run, "--sagas", "tests.sagapkgs.no_result:SAGAS"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert broken.returncode == 2
    assert "the action has a result model" in broken.stderr
