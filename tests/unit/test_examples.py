"""sagas/examples holds a valid example input for every saga type."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sagas import OSM_SAGAS, Saga

EXAMPLES = Path(__file__).resolve().parents[2] / "sagas" / "examples"


@pytest.mark.parametrize("saga", OSM_SAGAS, ids=lambda s: s.name)
def test_every_saga_type_has_a_valid_example(saga: Saga) -> None:  # type: ignore[type-arg]
    path = EXAMPLES / f"{saga.name.replace('.', '-')}.json"
    assert path.exists(), f"add {path.relative_to(EXAMPLES.parents[1])}"
    data = saga.parse_input(json.loads(path.read_text()))
    assert saga.plan(data)


def test_the_story_examples_fit_together() -> None:
    files = {p.name: json.loads(p.read_text()) for p in EXAMPLES.glob("*.json")}
    account = files["vim-account-create.json"]["vim_account_id"]
    assert files["ns-instantiate.json"]["vim_account_id"] == account
    assert files["ns-instantiate-over-quota.json"]["vim_account_id"] == account
    assert files["vim-account-create.json"]["credentials"]["auth_url"].startswith(
        "http://127.0.0.1:6080/"
    )
    flavors = {"m1.tiny": 1, "m1.small": 1, "m1.medium": 2, "m1.large": 4, "m1.xlarge": 8}

    def cores(ns: dict) -> int:  # type: ignore[type-arg]
        return sum(flavors[v["flavor"]] * v["count"] for vnf in ns["vnfs"] for v in vnf["vdus"])

    # The dummy VIM's default quota is 20 cores: the first NS fits, the second alone does not.
    assert cores(files["ns-instantiate.json"]) <= 20
    assert cores(files["ns-instantiate-over-quota.json"]) > 20
