"""The adapter process shell: settings from the environment, the `convection adapter` group."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from convection.cli import build_app
from convection.openstack import CallContext, error_message
from convection.participant_main import ParticipantSettings, SettingsError, load_settings


def test_settings_are_read_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVECTION_AMQP_URL", "amqp://guest:secret@h/")
    monkeypatch.setenv("CONVECTION_DB_URL", "sqlite+aiosqlite:///x.db")
    monkeypatch.setenv("CONVECTION_FAILPOINT", "participant.after_effect")
    settings = load_settings(ParticipantSettings)
    assert settings.prefetch == 16 and settings.failpoint == "participant.after_effect"

    monkeypatch.setenv("CONVECTION_FAILPOINT", "nope")
    monkeypatch.setenv("CONVECTION_AMQP_URL", "http://guest:secret@h/")
    with pytest.raises(SettingsError) as caught:
        load_settings(ParticipantSettings)
    text = str(caught.value)
    assert "CONVECTION_FAILPOINT" in text and "CONVECTION_AMQP_URL" in text
    assert "secret" not in text  # never echo a URL: it may carry a password


def test_adapters_share_one_command_group() -> None:
    app = build_app()
    result = CliRunner().invoke(app, ["adapter", "--help"])
    assert result.exit_code == 0, result.output
    for name in ("vim", "ro", "lcm"):
        assert f" {name} " in result.output
    groups = [g for g in app.registered_groups if g.name == "adapter"]
    assert len(groups) == 1 and isinstance(groups[0].typer_instance, typer.Typer)


def test_error_messages_and_ledger_headers() -> None:
    assert error_message({"forbidden": {"code": 403, "message": "Quota"}}, "x") == "Quota"
    assert error_message("not json", "fallback") == "fallback"
    headers = CallContext(saga_id="s", step="k" * 300, action=None).headers()
    assert headers["X-Convection-Saga-Id"] == "s"
    assert headers["X-Convection-Step"].startswith("sha256:")
    assert "X-Convection-Action" not in headers
