"""The bench saga package: offered by entry point and by reference, of any number of steps."""

from __future__ import annotations

import pytest

from convection_bench.noop import sagas as noop
from convection_bench.system import saga_selection
from coordinator.core import Engine
from coordinator.definitions import load_registry
from tests.unit.world import T0


def test_the_entry_point_offers_three_steps_and_a_reference_offers_any() -> None:
    assert [s.step_names() for s in load_registry("bench")] == [("echo-1", "echo-2", "echo-3")]
    five = load_registry(saga_selection(5))
    assert [s.step_names() for s in five] == [tuple(f"echo-{n}" for n in range(1, 6))]
    assert five.services() == ("bench",)
    assert saga_selection(3) == "bench"


def test_a_reference_of_no_shape_is_not_an_attribute() -> None:
    with pytest.raises(AttributeError):
        noop.__getattr__("steps_x")
    with pytest.raises(ValueError, match="1 to 100 steps"):
        noop.noop_saga(0)


def test_a_bench_saga_starts_with_its_first_echo() -> None:
    engine = Engine(load_registry(saga_selection(2)))
    decision = engine.start(
        saga_type=noop.SAGA_TYPE, saga_id="b-1", input={"steps": 2, "payload": "x"}, at=T0
    )
    [command] = decision.commands
    assert command.step == "echo-1" and command.payload == {"step": 1, "payload": "x"}
