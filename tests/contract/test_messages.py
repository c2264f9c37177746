"""The wire contracts: round trips, strictness, decode reasons and schema drift."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

import contracts
from contracts import BadMessage, ErrorInfo, ro, schemas, topology, vim
from tests.unit.world import OSM_CATALOGUE, OSM_TOPOLOGY


def _command() -> contracts.Command:
    return contracts.Command(
        saga_id="s-1",
        saga_type="ns.instantiate",
        step="ns-record",
        attempt=1,
        idempotency_key="s-1/ns-record",
        service="lcm",
        action="lcm.create-ns-record",
        payload={"ns_id": "ns-1"},
    )


@pytest.mark.parametrize(
    "message",
    [
        contracts.StartSaga(saga_type="ns.instantiate", input={"ns_id": "a"}),
        contracts.StartSaga(saga_type="ns.instantiate", saga_id="chosen-1"),
        contracts.CancelSaga(saga_id="s-1", reason="operator asked"),
        contracts.WakeSaga(saga_id="s-1", resource="ns:a"),
        contracts.SagaEvent(
            saga_id="s-1",
            saga_type="ns.instantiate",
            status=contracts.SagaStatus.COMPENSATED,
            error=ErrorInfo(code="quota_exceeded", message="no room"),
            at=datetime(2026, 1, 1, tzinfo=UTC),
        ),
        _command(),
        contracts.reply_to(_command(), "succeeded", result={"ns_id": "ns-1"}),
        contracts.reply_to(_command(), "failed", error=ErrorInfo(code="x", message="y")),
        contracts.reply_to(_command(), "progress", progress=contracts.Progress(message="2/4")),
    ],
)
def test_every_message_round_trips(message: contracts.AnyMessage) -> None:
    assert contracts.decode(contracts.encode(message)) == message


def test_unknown_fields_are_refused() -> None:
    body = json.loads(contracts.encode(contracts.CancelSaga(saga_id="s", reason="r")))
    body["surprise"] = 1
    with pytest.raises(BadMessage) as err:
        contracts.decode(json.dumps(body).encode())
    assert err.value.reason == "invalid_message"
    assert "surprise" in err.value.detail


def test_datetimes_are_utc_and_naive_ones_refused() -> None:
    plus_two = timezone(timedelta(hours=2))
    event = contracts.SagaEvent(
        saga_id="s",
        saga_type="t",
        status=contracts.SagaStatus.RUNNING,
        at=datetime(2026, 1, 1, 12, tzinfo=plus_two),
    )
    assert event.at.utcoffset() == timedelta(0)
    assert event.at.hour == 10
    with pytest.raises(ValidationError):
        contracts.SagaEvent(
            saga_id="s",
            saga_type="t",
            status=contracts.SagaStatus.RUNNING,
            at=datetime(2026, 1, 1),  # noqa: DTZ001
        )


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "invalid_json"),
        (b"\xff\xfe", "invalid_json"),
        (b"[1, 2]", "not_an_object"),
        (b'{"type": "saga.explode"}', "unknown_type"),
        (b'{"saga_type": "x"}', "unknown_type"),
        (
            b'{"type": "saga.start", "schema_version": 99, "saga_type": "x"}',
            "unsupported_schema_version",
        ),
        (b'{"type": "saga.start", "saga_type": "Not A Name"}', "invalid_message"),
        (b'{"type": "saga.cancel", "saga_id": "s"}', "invalid_message"),
    ],
)
def test_bad_bodies_name_their_reason(body: bytes, reason: str) -> None:
    with pytest.raises(BadMessage) as err:
        contracts.decode(body)
    assert err.value.reason == reason


def test_too_large_is_refused_before_parsing() -> None:
    body = contracts.encode(contracts.StartSaga(saga_type="x", input={"blob": "a" * 2000}))
    with pytest.raises(BadMessage) as err:
        contracts.decode(body, max_bytes=1000)
    assert err.value.reason == "too_large"


@pytest.mark.parametrize(
    ("outcome", "fields"),
    [
        ("succeeded", {}),
        ("succeeded", {"result": {}, "error": ErrorInfo(code="c", message="m")}),
        ("failed", {}),
        ("retryable", {"result": {}}),
        ("progress", {"result": {}}),
    ],
)
def test_reply_fields_must_match_outcome(outcome: str, fields: dict[str, object]) -> None:
    raw = {"command_id": "c", "saga_id": "s", "step": "x", "attempt": 1, "outcome": outcome}
    with pytest.raises(ValidationError):
        contracts.Reply.model_validate({**raw, **fields})


def test_catalogue_knows_every_action_and_its_service() -> None:
    names = set(OSM_CATALOGUE.all())
    assert {"vim.register-account", "ro.deploy-vdus", "lcm.set-ns-state"} <= names
    for name, action in OSM_CATALOGUE.all().items():
        assert name.startswith(action.SERVICE + ".")
        assert issubclass(action.RESULT, contracts.Result)
    with pytest.raises(contracts.UnknownAction):
        OSM_CATALOGUE["ro.launch-missiles"]


def test_payloads_validate() -> None:
    creds = vim.VimCredentials(
        auth_url="http://127.0.0.1:6080/identity/v3", username="u", password="p", project="p"
    )
    target = ro.VimTarget(vim_account_id="vim-1", credentials=creds)
    deploy = ro.DeployVdus(
        vim=target, ns_id="ns-1", vnf="vnf-1", vdus=[ro.VduSpec(name="v", image="i", flavor="f")]
    )
    assert OSM_CATALOGUE[deploy.ACTION].model_validate(deploy.model_dump()) == deploy
    with pytest.raises(ValidationError):
        ro.VduSpec(name="v", image="i", flavor="f", count=0)
    with pytest.raises(ValidationError):
        vim.VimCredentials(auth_url="ftp://x", username="u", password="p", project="p")


def test_schema_files_match_the_models() -> None:
    wanted = schemas.all_schemas()
    on_disk = {p.name for p in schemas.SCHEMA_DIR.glob("*.json")}
    assert on_disk == set(wanted), "run `uv run python -m contracts.schemas` and commit"
    for name, schema in wanted.items():
        text = (schemas.SCHEMA_DIR / name).read_text()
        assert text == schemas.render(schema), (
            f"{name} is stale: run `uv run python -m contracts.schemas` and commit"
        )


def test_topology_names_are_the_public_interface() -> None:
    assert topology.SAGAS_EXCHANGE == "convection.sagas"
    assert topology.START_ROUTING_KEY == "saga.start"
    assert topology.CANCEL_ROUTING_KEY == "saga.cancel"
    assert topology.EVENTS_EXCHANGE == "convection.events"
    assert topology.event_routing_key("ns.instantiate", "completed") == (
        "saga.ns.instantiate.completed"
    )
    topo = OSM_TOPOLOGY
    names = {q.name for q in topo.queues}
    assert {"convection.commands.vim", "convection.commands.ro", "convection.commands.lcm"} <= names
    assert topo.queue("convection.commands.ro").dead_letter == "convection.commands.ro.dead"
    assert all(q.delivery_limit > 0 for q in topo.queues)


def test_a_message_without_id_gets_one_derived_from_its_bytes() -> None:
    body = b'{"type": "saga.start", "saga_type": "vim-account.create", "input": {}}'
    first, again = contracts.decode(body), contracts.decode(body)
    assert first.message_id == again.message_id
    other = contracts.decode(body.replace(b"{}", b'{"x": 1}'))
    assert other.message_id != first.message_id
