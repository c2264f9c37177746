"""The ro-adapter over RabbitMQ and PostgreSQL, against an embedded VIM simulator."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import ro_adapter
from contracts import ro
from convection.db import make_engine
from convection.transport import Transport
from tests.integration.adapter_support import (
    admin,
    call,
    command,
    connected,
    credentials,
    ledger,
    next_reply,
    result_of,
    running,
    send,
    simulator,
)
from vim_sim import VimSimulator

pytestmark = [pytest.mark.amqp, pytest.mark.postgres]


@pytest.fixture
async def env(
    tmp_path: Path, fresh_amqp_url: str, pg_url: str
) -> AsyncIterator[tuple[Transport, VimSimulator]]:
    engine = make_engine(pg_url)
    async with (
        simulator(tmp_path) as sim,
        connected(fresh_amqp_url) as transport,
        running(ro_adapter.run, transport=transport, engine=engine, poll_interval=0.1),
    ):
        yield transport, sim
    await engine.dispose()


def target(sim: VimSimulator, password: str = "osm") -> ro.VimTarget:
    return ro.VimTarget(vim_account_id="acc", credentials=credentials(sim, password=password))


def operations(rows: list[dict[str, object]]) -> list[object]:
    return [row["operation"] for row in rows]


async def test_networks_then_vdus_then_terminate(env: tuple[Transport, VimSimulator]) -> None:
    transport, sim = env
    saga, ns = uuid.uuid4().hex, "ns-1"
    nets = [
        ro.NetworkSpec(name="mgmt", cidr="10.0.0.0/24"),
        ro.NetworkSpec(name="data", cidr="10.0.1.0/24"),
    ]
    created = await call(
        transport,
        ro.CreateNetworks(vim=target(sim), ns_id=ns, networks=nets),
        saga_id=saga,
        step="networks",
    )
    assert created.outcome == "succeeded", created
    network_ids = [n["network_id"] for n in result_of(created)["networks"]]
    found = await call(transport, ro.FindNsNetworks(vim=target(sim), ns_id=ns))
    assert sorted(n["network_id"] for n in result_of(found)["networks"]) == sorted(network_ids)

    vdus = [ro.VduSpec(name="web", image="ubuntu-22.04", flavor="m1.small", count=2)]
    deploy = ro.DeployVdus(
        vim=target(sim), ns_id=ns, vnf="vnf1", vdus=vdus, network_ids=network_ids
    )
    await send(transport, command(deploy, saga_id=saga, step="vdus"))
    first = await next_reply(transport, progress=True)
    assert first.outcome == "progress"  # the servers boot in 0.2 s: at least one heartbeat
    deployed = await next_reply(transport)
    assert deployed.outcome == "succeeded", deployed
    assert [s["status"] for s in result_of(deployed)["servers"]] == ["ACTIVE", "ACTIVE"]
    rows = await ledger(sim, saga)
    assert operations(rows).count("create_server") == 2
    assert {row["step"] for row in rows} == {"networks", "vdus"}

    end = await call(transport, ro.DeleteNsResources(vim=target(sim), ns_id=ns), saga_id=saga)
    assert end.outcome == "succeeded" and len(result_of(end)["server_ids"]) == 2
    left = await admin(sim, "GET", f"/admin/resources?saga_id={saga}")
    assert left["servers"] == [] and left["networks"] == []


async def test_quota_exceeded_on_the_last_vdu_then_compensation(
    env: tuple[Transport, VimSimulator],
) -> None:
    transport, sim = env
    saga = uuid.uuid4().hex
    vdus = [ro.VduSpec(name="big", image="debian-12", flavor="m1.xlarge", count=3)]
    key = f"{saga}/vdus"
    failed = await call(
        transport,
        ro.DeployVdus(vim=target(sim), ns_id="ns-q", vnf="v", vdus=vdus),
        saga_id=saga,
        key=key,
    )
    assert failed.outcome == "failed" and failed.error.code == "quota_exceeded"
    assert (
        failed.error.message
        == "Quota exceeded for cores: Requested 8, but already used 16 of 20 cores"
    )

    # A step that fails for good leaves no effect: the two VMs it created before the quota ran
    # out were removed by the step itself, so the saga has nothing of it to compensate.
    assert (await admin(sim, "GET", f"/admin/resources?saga_id={saga}"))["servers"] == []
    effects = [e["operation"] for e in await ledger(sim, saga)]
    assert effects.count("create_server") == 2
    assert effects.count("delete_server") == 2

    # Its compensation, if a timeout made the outcome uncertain, would find nothing left.
    undo = ro.DeleteVdus(vim=target(sim), ns_id="ns-q", server_ids=[])
    undone = await call(
        transport, undo, saga_id=saga, key=f"{key}/undo", compensation=True, undoes_key=key
    )
    assert undone.outcome == "succeeded"
    assert result_of(undone)["server_ids"] == []


async def test_a_step_whose_own_clean_up_failed_is_not_a_final_failure(
    env: tuple[Transport, VimSimulator],
) -> None:
    # The quota runs out on the third VM and the VIM refuses to delete the two made, so the
    # step cannot prove it left nothing: `failed` would tell the coordinator there is nothing
    # to compensate. It answers retryable and uncertain, so the step is compensated if it
    # never succeeds, and a compensation then deletes what is left.
    transport, sim = env
    saga = uuid.uuid4().hex
    vdus = [ro.VduSpec(name="big", image="debian-12", flavor="m1.xlarge", count=3)]
    key = f"{saga}/vdus"
    await admin(sim, "POST", "/admin/faults", {"fail_operations": ["delete_server"], "status": 503})
    reply = await call(
        transport,
        ro.DeployVdus(vim=target(sim), ns_id="ns-c", vnf="v", vdus=vdus),
        saga_id=saga,
        key=key,
    )
    await admin(sim, "DELETE", "/admin/faults")
    assert (reply.outcome, reply.error.code, reply.uncertain) == (
        "retryable",
        "cleanup_failed",
        True,
    )
    assert len((await admin(sim, "GET", f"/admin/resources?saga_id={saga}"))["servers"]) == 2
    undo = ro.DeleteVdus(vim=target(sim), ns_id="ns-c", server_ids=[])
    undone = await call(
        transport, undo, saga_id=saga, key=f"{key}/undo", compensation=True, undoes_key=key
    )
    assert undone.outcome == "succeeded"
    assert (await admin(sim, "GET", f"/admin/resources?saga_id={saga}"))["servers"] == []


async def test_business_and_transient_failures(env: tuple[Transport, VimSimulator]) -> None:
    transport, sim = env
    vdus = [ro.VduSpec(name="x", image="windows-95", flavor="m1.tiny")]
    bad_image = await call(
        transport, ro.DeployVdus(vim=target(sim), ns_id="ns-b", vnf="v", vdus=vdus)
    )
    assert bad_image.outcome == "failed" and bad_image.error.code == "bad_request"
    assert bad_image.error.message == "Image windows-95 could not be found."

    bad_creds = await call(transport, ro.FindNsNetworks(vim=target(sim, "wrong"), ns_id="ns-b"))
    assert bad_creds.outcome == "failed" and bad_creds.error.code == "invalid_credentials"
    assert bad_creds.error.message == "The request you have made requires authentication."

    await admin(
        sim, "POST", "/admin/faults", {"fail_operations": ["create_network"], "status": 503}
    )
    nets = [ro.NetworkSpec(name="n", cidr="10.9.0.0/24")]
    busy = await call(transport, ro.CreateNetworks(vim=target(sim), ns_id="ns-b", networks=nets))
    assert busy.outcome == "retryable" and busy.error.code == "vim_unavailable"
    # A 503 (or a timeout) to a create may have created it: the step must be undone if the
    # saga compensates before a retry succeeds (found by the fault matrix's backlog: servers
    # of a timed-out create were left behind and their network could never be deleted).
    assert busy.uncertain


async def test_same_command_twice_has_one_effect_and_two_identical_replies(
    env: tuple[Transport, VimSimulator],
) -> None:
    transport, sim = env
    saga = uuid.uuid4().hex
    nets = [ro.NetworkSpec(name="n", cidr="10.2.0.0/24")]
    cmd = command(ro.CreateNetworks(vim=target(sim), ns_id="ns-d", networks=nets), saga_id=saga)
    await asyncio.gather(send(transport, cmd), send(transport, cmd))
    a, b = await next_reply(transport), await next_reply(transport)
    assert a.model_dump(exclude={"sent_at"}) == b.model_dump(exclude={"sent_at"})
    assert a.outcome == "succeeded"
    assert operations(await ledger(sim, saga)) == ["create_network", "create_subnet"]


async def test_compensation_deletes_what_an_uncertain_step_created(
    env: tuple[Transport, VimSimulator],
) -> None:
    transport, sim = env
    saga = uuid.uuid4().hex
    key = f"{saga}/networks"
    nets = [
        ro.NetworkSpec(name="a", cidr="10.3.0.0/24"),
        ro.NetworkSpec(name="b", cidr="10.4.0.0/24"),
    ]
    # The VIM creates the first network but loses the reply: the step is uncertain (retryable).
    await admin(
        sim, "POST", "/admin/faults", {"fail_operations": ["create_network"], "after_effect": True}
    )
    forward = ro.CreateNetworks(vim=target(sim), ns_id="ns-u", networks=nets)
    lost = await call(transport, forward, saga_id=saga, key=key)
    assert lost.outcome == "retryable" and lost.uncertain
    await admin(sim, "DELETE", "/admin/faults")
    assert len((await admin(sim, "GET", f"/admin/resources?saga_id={saga}"))["networks"]) == 1

    undo = ro.DeleteNetworks(vim=target(sim), ns_id="ns-u", network_ids=[])
    undone = await call(
        transport, undo, saga_id=saga, key=f"{key}/undo", compensation=True, undoes_key=key
    )
    assert undone.outcome == "succeeded" and len(result_of(undone)["network_ids"]) == 1
    assert (await admin(sim, "GET", f"/admin/resources?saga_id={saga}"))["networks"] == []

    # A forward command delayed past its compensation must not create anything.
    late = await call(transport, forward, saga_id=saga, key=key, attempt=2)
    assert late.outcome == "failed" and late.error.code == "already_compensated"
    assert (await admin(sim, "GET", f"/admin/resources?saga_id={saga}"))["networks"] == []
