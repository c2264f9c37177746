"""Which saga columns the PostgreSQL hot path writes: all of a new saga's, and of an update
all but the stable ones (the input above all) unless one of those changed."""

from __future__ import annotations

from datetime import UTC, datetime

from contracts import SagaStatus
from coordinator.core import SagaState
from coordinator.store.hot import _STABLE, _changed
from coordinator.store.rows import saga_row


def _saga() -> SagaState:
    now = datetime.now(UTC)
    return SagaState(
        saga_id="s-1",
        saga_type="ns.instantiate",
        definition_version=1,
        status=SagaStatus.RUNNING,
        input={"nsd": "x" * 1000},
        created_at=now,
        updated_at=now,
        steps=(),
    )


def test_a_new_saga_writes_every_column() -> None:
    state = _saga()
    assert set(_changed(saga_row(state), None)) == set(saga_row(state)) - {"id"}


def test_an_update_leaves_the_unchanged_input_out() -> None:
    before = _saga()
    after = before.model_copy(update={"status": SagaStatus.COMPLETED, "version": 2})
    written = _changed(saga_row(after), before)
    assert "input" not in written and not _STABLE & set(written)
    assert {"status", "version", "updated_at", "phase", "error"} <= set(written)


def test_an_update_that_changes_a_stable_column_writes_them_all() -> None:
    before = _saga()
    after = before.model_copy(update={"resources": ("vim:1",), "version": 2})
    assert set(_changed(saga_row(after), before)) == set(saga_row(after)) - {"id"}
    # An equal value in another object is no change.
    same = before.model_copy(update={"input": dict(before.input), "version": 2})
    assert "input" not in _changed(saga_row(same), before)
