"""Every step that talks to a VIM rides out an outage of minutes, in its own retries.

Found by the fault matrix: vim-account.create's `validate` gave up two minutes after its
first attempt, so a VIM down for three minutes, or a backlog that kept its command queued past
its deadline, failed the saga.
"""

from __future__ import annotations

from datetime import timedelta

from sagas import DEFAULT_RETRY, StepKind, osm_registry
from sagas.steps import ForEach, Parallel, Step

# Actions carried out against the VIM itself (not against an adapter's own tables).
_TALKS_TO_VIM = ("vim.validate-credentials", "ro.")


def _vim_steps() -> list[tuple[str, Step]]:
    found = []
    for saga in osm_registry():
        for stage in saga.stages:
            inner = stage.steps if isinstance(stage, Parallel) else (stage,)
            for step in (s.step if isinstance(s, ForEach) else s for s in inner):
                action = step.action.ACTION
                # A retriable step (after the commit point) retries without bound anyway.
                if action.startswith(_TALKS_TO_VIM) and step.kind is not StepKind.RETRIABLE:
                    found.append((f"{saga.name}/{step.name}", step))
    return found


def test_steps_that_talk_to_a_vim_retry_for_minutes() -> None:
    steps = _vim_steps()
    assert {name for name, _ in steps} >= {"vim-account.create/validate", "ns.instantiate/networks"}
    for name, step in steps:
        policy = step.retry or DEFAULT_RETRY
        assert policy.allows(attempts=12, elapsed=timedelta(minutes=5)), name
