"""The saga type catalogue: what a coordinator's loaded definitions look like from outside.

Served by `GET /saga-types` and printed by `convection sagas`: each type with every loaded
version, its steps in order (kind, service, action, compensation), the resources it locks and
how, and the JSON Schema its input must match.
"""

from __future__ import annotations

from typing import Any

from sagas import ForEach, Parallel, Registry, Saga, Step


def describe(registry: Registry) -> list[dict[str, Any]]:
    """Return every saga type of `registry`, newest version first within each type."""
    out = []
    for name in registry.names():
        versions = [registry.get(name, v) for v in reversed(registry.versions(name))]
        latest = registry.latest(name)
        out.append(
            {
                "saga_type": name,
                "latest": latest.version,
                "description": latest.description,
                "versions": [_version(saga) for saga in versions if saga is not None],
            }
        )
    return out


def _version(saga: Saga[Any]) -> dict[str, Any]:
    return {
        "version": saga.version,
        "description": saga.description,
        "steps": [step for stage in saga.stages for step in _stage(stage)],
        "locks": {
            "resources": [{"resource": r, "mode": m.value} for r, m in saga.resource_patterns()],
            "policy": saga.lock_policy.value,
            "supersedes": list(saga.supersedes),
            "supersede_queued": saga.supersede_queued.value,
        },
        "timeout_seconds": saga.timeout.total_seconds() if saga.timeout else None,
        "input_schema": saga.input_schema(),
    }


def _stage(stage: Step | Parallel | ForEach[Any, Any]) -> list[dict[str, Any]]:
    if isinstance(stage, Step):
        return [_step(stage, None, None)]
    if isinstance(stage, Parallel):
        return [_step(s, stage.name, "parallel") for s in stage.steps]
    return [_step(stage.step, stage.name, "for_each")]


def _step(step: Step, group: str | None, grouping: str | None) -> dict[str, Any]:
    return {
        "name": step.name,
        "group": group,
        "grouping": grouping,
        "kind": step.resolved_kind.value,
        "service": step.action.SERVICE,
        "action": step.action.ACTION,
        "compensation": step.compensation.ACTION if step.compensation else None,
        "uses": list(step.uses),
        "timeout_seconds": step.timeout.total_seconds(),
    }
