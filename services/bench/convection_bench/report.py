"""The figures of a run, the tables that show them, and the JSON document that keeps them all."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

RATIO_KEYS = ("sagas_per_s", "p50_ms", "p99_ms", "cpu_processes_ms", "cpu_machine_ms")
"""The figures compared as `system / floor` in the ratio row."""


@dataclass
class ProcessFigures:
    """One process of a system: CPU per saga in the throughput phase, peak RSS, its counters."""

    label: str
    role: str
    pid: int
    cpu_ms_per_saga: float | None
    peak_rss_mib: float | None
    exit_code: int | None
    counters: dict[str, int] | None
    """What the process reported in its stats file (whole run), or None if it wrote none."""


@dataclass
class SystemFigures:
    """Every figure of one system's run."""

    system: str
    steps: int
    sagas: int
    concurrency: int
    warmup: int
    latency_sagas: int
    throughput_seconds: float
    sagas_per_s: float
    steps_per_s: float
    latency_ms: dict[str, float] | None
    """p50, p95, p99, max and mean of the latency phase (start published -> event received)."""
    step_latency_ms: dict[str, float] | None
    cpu_ms_per_saga: dict[str, float | None]
    """`processes` (the system's, summed), `machine`, `postgres` (the database's backends) and
    `harness` (this process: starts and events; part of `machine`)."""
    per_step: dict[str, float | None]
    """Per saga step over the whole run: `db_transactions` (server side, pg_stat_database),
    `db_statements`, `db_transactions_client`, `messages_published`, `messages_consumed`."""
    processes: list[ProcessFigures]
    notes: list[str] = field(default_factory=list)
    rss_over_time: list[dict[str, Any]] = field(default_factory=list)
    """With `--rss-every`: samples of `t` (seconds into the throughput phase) and `rss_mib`."""

    def headline(self) -> dict[str, float | None]:
        """Return the figures the ratio row compares."""
        latency = self.latency_ms or {}
        return {
            "sagas_per_s": self.sagas_per_s,
            "p50_ms": latency.get("p50"),
            "p99_ms": latency.get("p99"),
            "cpu_processes_ms": self.cpu_ms_per_saga.get("processes"),
            "cpu_machine_ms": self.cpu_ms_per_saga.get("machine"),
        }


def quantile(ordered: Sequence[float], q: float) -> float:
    """Return the q-quantile of sorted values, interpolating linearly between neighbours."""
    if not ordered:
        raise ValueError("no values")
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarize(seconds: Sequence[float]) -> dict[str, float] | None:
    """Return p50, p95, p99, max and mean in milliseconds; None for no values."""
    if not seconds:
        return None
    ordered = sorted(s * 1000.0 for s in seconds)
    return {
        "p50": quantile(ordered, 0.50),
        "p95": quantile(ordered, 0.95),
        "p99": quantile(ordered, 0.99),
        "max": ordered[-1],
        "mean": sum(ordered) / len(ordered),
    }


def ratios(base: SystemFigures, other: SystemFigures) -> dict[str, float | None]:
    """Return `other / base` for each headline figure (None where either is missing or 0)."""
    mine, theirs = other.headline(), base.headline()
    out: dict[str, float | None] = {}
    for key in RATIO_KEYS:
        a, b = mine[key], theirs[key]
        out[key] = a / b if a is not None and b else None
    return out


def _num(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def _ratio(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}x"


def render(figures: Sequence[SystemFigures], console: Console) -> None:
    """Print the tables: rates and latency, cost per saga and step, and each process."""
    floor = next((f for f in figures if f.system == "floor"), None)
    others = [f for f in figures if f is not floor] if floor is not None else []
    first = figures[0]
    console.print(
        f"{first.sagas} sagas of {first.steps} steps, {first.concurrency} in flight "
        f"(after {first.warmup} warm-up sagas; latency from {first.latency_sagas} "
        "sagas one after another)"
    )
    speed = Table(title="throughput and saga latency")
    for column in ("system", "sagas/s", "steps/s", "p50 ms", "p95 ms", "p99 ms", "max ms"):
        speed.add_column(column, justify="left" if column == "system" else "right")
    for f in figures:
        lat = f.latency_ms or {}
        speed.add_row(
            f.system,
            _num(f.sagas_per_s),
            _num(f.steps_per_s),
            *(_num(lat.get(k), 2) for k in ("p50", "p95", "p99", "max")),
        )
    cost = Table(title="cost: CPU ms per saga (throughput phase), work per step (whole run)")
    for column in ("system", "CPU procs", "CPU machine", "CPU postgres", "tx/step"):
        cost.add_column(column, justify="left" if column == "system" else "right")
    for column in ("stmts/step", "msgs out/step", "msgs in/step"):
        cost.add_column(column, justify="right")
    for f in figures:
        cpu, per = f.cpu_ms_per_saga, f.per_step
        cost.add_row(
            f.system,
            *(_num(cpu.get(k), 2) for k in ("processes", "machine", "postgres")),
            *(
                _num(per.get(k), 2)
                for k in ("db_transactions", "db_statements", "messages_published")
            ),
            _num(per.get("messages_consumed"), 2),
        )
    for f in others:
        assert floor is not None
        r = ratios(floor, f)
        label = f"{f.system} / floor"
        speed.add_row(
            label,
            _ratio(r["sagas_per_s"]),
            "",
            _ratio(r["p50_ms"]),
            "",
            _ratio(r["p99_ms"]),
            style="bold",
        )
        cost.add_row(
            label, _ratio(r["cpu_processes_ms"]), _ratio(r["cpu_machine_ms"]), style="bold"
        )
    procs = Table(title="processes")
    for column in ("system", "process", "pid", "CPU ms/saga", "peak RSS MiB", "exit"):
        procs.add_column(column, justify="left" if column in ("system", "process") else "right")
    for f in figures:
        for p in f.processes:
            exit_code = "" if p.exit_code is None else str(p.exit_code)
            procs.add_row(
                f.system,
                p.label,
                str(p.pid),
                _num(p.cpu_ms_per_saga, 2),
                _num(p.peak_rss_mib),
                exit_code,
            )
    for table in (speed, cost, procs):
        console.print(table)
    for f in figures:
        if f.rss_over_time:
            console.print(_memory(f))
    for f in figures:
        for note in f.notes:
            console.print(f"[dim]{f.system}: {note}[/]")


def _memory(f: SystemFigures) -> Table:
    labels = sorted({label for sample in f.rss_over_time for label in sample["rss_mib"]})
    table = Table(title=f"{f.system}: RSS MiB over the throughput phase")
    table.add_column("t s", justify="right")
    for label in labels:
        table.add_column(label, justify="right")
    for sample in f.rss_over_time:
        rss = sample["rss_mib"]
        table.add_row(f"{sample['t']:.0f}", *(_num(rss.get(label)) for label in labels))
    return table


def write_json(path: Path, figures: Sequence[SystemFigures], settings: dict[str, Any]) -> None:
    """Write every figure, the settings and the ratios to `path` as JSON."""
    floor = next((f for f in figures if f.system == "floor"), None)
    document = {
        "settings": settings,
        "systems": [asdict(f) for f in figures],
        "ratios": {
            f"{f.system} / floor": ratios(floor, f)
            for f in figures
            if floor is not None and f is not floor
        },
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
