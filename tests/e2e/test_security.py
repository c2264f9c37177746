"""Secrets and authenticity on the real services: what an attacker with the broker or the
coordinator's database would see, and what they could make the adapters do.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from tests.e2e.test_operator_verbs import ns, ops

pytestmark = [pytest.mark.slow, pytest.mark.amqp, pytest.mark.postgres]
PASSWORD = "s3cr3t-Pa55-8f1d"


@pytest.mark.timeout(240)
async def test_a_vim_password_never_lands_in_the_coordinator_or_on_the_wire(
    tmp_path: Path, fresh_amqp_url: str, fresh_pg_url: str
) -> None:
    # Sent outbox rows kept, so what went on the wire can be read back from the table.
    keep = {"CONVECTION_OUTBOX_RETENTION_SECONDS": "3600"}
    async with ops(tmp_path, fresh_amqp_url, fresh_pg_url, coordinator_env=keep) as s:
        async with aiohttp.ClientSession() as http:
            quota = {"cores": 100, "instances": 100}
            project = {"name": "sec", "user": "sec", "password": PASSWORD, "quota": quota}
            async with http.post(s.sim + "/admin/projects", json=project) as resp:
                assert resp.status in (200, 201), await resp.text()
        account = s.account("vim-sec")
        account["credentials"].update(username="sec", password=PASSWORD, project="sec")
        await s.start("vim-account.create", "acct-sec", account)
        assert await s.ended("acct-sec") == "completed"
        # The password reached the VIM (the account was validated and registered), and an
        # NS on the account deploys: the ro-adapter opened it too.
        await s.start("ns.instantiate", "inst-sec", ns("ns-sec", "vim-sec"))
        assert await s.ended("inst-sec", within=120) == "completed"
        tables = {
            "sagas": "input::text",
            "saga_steps": "coalesce(result::text, '')",
            "saga_history": "detail::text",
            "outbox": "convert_from(body, 'UTF8') || headers::text",
            "parked_events": "event",
        }
        [sent] = await s.sql("SELECT count(*) AS n FROM outbox WHERE sent_at IS NOT NULL")
        assert sent["n"] > 0, "no sent outbox row kept: the scan below would see nothing"
        for table, column in tables.items():
            leaks = await s.sql(f"SELECT 1 FROM {table} WHERE {column} LIKE '%{PASSWORD}%'")
            assert leaks == [], f"the password is in the coordinator's {table}"
        logs = "\n".join(svc.log_text() for svc in s.group if svc.name == "coordinator")
        assert PASSWORD not in logs
        [stored] = await s.sql(
            "SELECT credentials FROM vim_adapter_accounts WHERE vim_account_id = 'vim-sec'"
        )
        assert '"password": "sealed:v1:' in str(stored["credentials"])
        assert PASSWORD not in str(stored["credentials"]), "kept sealed at rest by its owner"
        _, shown = await s.call("GET", "/sagas/acct-sec")
        assert shown["input"]["credentials"]["password"].startswith("sealed:v1:")
