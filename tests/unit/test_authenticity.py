"""Who may answer a step, how the service users are configured, and what each broker user is
granted (the grants are proven on the real broker by tests/e2e/test_broker_users.py).
"""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from contracts import ErrorInfo, Reply, topology
from coordinator.broker_setup import (
    COORDINATOR_USER,
    grants,
    password_variable,
    service_user,
    setup_script,
)
from coordinator.senders import Senders
from coordinator.settings import CoordinatorSettings, parse_service_users

REPLY = Reply(
    command_id="c1",
    saga_id="s1",
    step="networks",
    attempt=1,
    outcome="failed",
    error=ErrorInfo(code="x", message="y"),
)
SENDERS = Senders({"ro": "convection-ro", "vim": "convection-vim"}, own=COORDINATOR_USER)


@pytest.mark.parametrize(
    ("sender", "accepted"),
    [
        ("convection-ro", True),
        (COORDINATOR_USER, True),  # an operator's replay, republished by the coordinator
        ("convection-vim", False),  # another service's user
        ("guest", False),
        (None, False),  # no user_id at all
    ],
)
def test_only_the_step_s_service_user_may_answer(sender: str | None, accepted: bool) -> None:
    outcome = SENDERS.check("ro", sender, REPLY)
    if accepted:
        assert outcome is None
    else:
        assert outcome is not None and outcome.kind == "rejected"
        assert outcome.reason == topology.FORGED
        assert "convection-ro" in outcome.note and repr(sender) in outcome.note


def test_a_service_without_a_user_is_answered_by_nobody_and_says_how_to_fix_it() -> None:
    outcome = SENDERS.check("lcm", "convection-lcm", REPLY)
    assert outcome is not None and "add lcm=USER to CONVECTION_SERVICE_USERS" in outcome.note


def test_service_users_parse_and_bad_ones_name_the_pair() -> None:
    assert parse_service_users(" vim=convection-vim , ro=r ") == {
        "vim": "convection-vim",
        "ro": "r",
    }
    for bad, why in (
        ("vim", "not service=user"),
        ("vim=", "not service=user"),
        ("vim=a,vim=b", "given twice"),
    ):
        with pytest.raises(ValueError, match=why):
            parse_service_users(bad)
    settings = CoordinatorSettings(amqp_url="memory://", db_url="sqlite://", service_users="vim=v")
    assert settings.service_user_map() == {"vim": "v"}
    assert CoordinatorSettings(amqp_url="memory://", db_url="sqlite://").service_user_map() is None
    with pytest.raises(ValidationError, match="service_users"):
        CoordinatorSettings(amqp_url="memory://", db_url="sqlite://", service_users="nope")


def _allowed(pattern: str, name: str) -> bool:
    return re.search(pattern, name) is not None


def test_a_participant_user_may_reply_and_read_its_own_commands_only() -> None:
    by_user = {g.user: g for g in grants(["vim", "ro"])}
    vim = by_user[service_user("vim")]
    names = [
        topology.COMMANDS_EXCHANGE,
        topology.SAGAS_EXCHANGE,
        topology.EVENTS_EXCHANGE,
        topology.command_queue("ro"),
        topology.command_queue("vim"),
        topology.COORDINATOR_REPLIES_QUEUE,
    ]
    assert not any(_allowed(vim.configure, n) for n in [*names, topology.REPLIES_EXCHANGE])
    assert [n for n in names if _allowed(vim.write, n)] == []
    assert _allowed(vim.write, topology.REPLIES_EXCHANGE)
    assert _allowed(vim.write, topology.DEAD_LETTER_EXCHANGE)
    assert [n for n in names if _allowed(vim.read, n)] == [topology.command_queue("vim")]
    client = by_user["convection-client"]
    assert [n for n in names if _allowed(client.write, n)] == [topology.SAGAS_EXCHANGE]
    assert [n for n in names if _allowed(client.read, n)] == [topology.EVENTS_EXCHANGE]
    coordinator = by_user[COORDINATOR_USER]
    assert all(_allowed(coordinator.write, n) for n in names)


def test_the_setup_script_sets_every_user_and_refuses_odd_service_names() -> None:
    script = setup_script(["billing"], vhost="/shop")
    for user in (COORDINATOR_USER, "convection-billing", "convection-client"):
        assert f"user {user} " in script
        assert f'set_permissions -p "$VHOST" {user} ' in script
    assert password_variable("convection-billing") in script
    assert 'VHOST="${CONVECTION_BROKER_VHOST:-/shop}"' in script
    with pytest.raises(ValueError, match="not a service name"):
        grants(["Bad Name; rm -rf /"])
