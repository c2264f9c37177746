"""`python -m tests.chaos`: a chaos run from the command line; exit 1 when it found a problem.

The short run of CI is the default; the long acceptance run is

    python -m tests.chaos --sagas 2000 --seconds 600 --broker-restarts 1 --db-restarts 1
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from tests.chaos.monkey import ChaosPlan
from tests.chaos.run import Options, run


def _range(text: str) -> tuple[float, float]:
    low, _, high = text.partition("-")
    pair = (float(low), float(high or low))
    if not 0 <= pair[0] <= pair[1]:
        raise argparse.ArgumentTypeError(f"{text!r}: want LOW-HIGH seconds, LOW <= HIGH")
    return pair


def parse(argv: list[str]) -> Options:
    """Read the options of one run from the command line."""
    p = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__)
    p.add_argument("--sagas", type=int, default=200, help="sagas in all (default 200)")
    p.add_argument("--seconds", type=float, default=60, help="chaos window (default 60)")
    p.add_argument("--kill-every", type=_range, default=(2.0, 5.0), help="pause, e.g. 2-5")
    p.add_argument("--down-for", type=_range, default=(0.2, 3.0), help="downtime, e.g. 0.2-3")
    p.add_argument("--max-kills", type=int, default=1000, help="kills at most (default 1000)")
    p.add_argument("--broker-restarts", type=int, default=1, help="RabbitMQ restarts (1)")
    p.add_argument("--db-restarts", type=int, default=1, help="PostgreSQL restarts (1)")
    p.add_argument("--broker-mode", choices=("graceful", "kill"), default="graceful")
    p.add_argument("--concurrency", type=int, default=40, help="chains in flight (40)")
    p.add_argument("--replicas", type=int, default=1, help="processes of each adapter (1)")
    p.add_argument("--drain-seconds", type=float, default=600, help="drain bound (600)")
    p.add_argument("--seed", type=int, default=0, help="random seed (0)")
    p.add_argument("--workdir", type=Path, default=None, help="where the logs go")
    p.add_argument("--progress-every", type=float, default=5, help="progress line (5 s)")
    a = p.parse_args(argv)
    return Options(
        sagas=a.sagas,
        chaos=ChaosPlan(
            seconds=a.seconds,
            kill_every=a.kill_every,
            down_for=a.down_for,
            broker_restarts=a.broker_restarts,
            db_restarts=a.db_restarts,
            max_kills=a.max_kills,
            broker_mode=a.broker_mode,
        ),
        concurrency=a.concurrency,
        replicas=a.replicas,
        drain_seconds=a.drain_seconds,
        seed=a.seed,
        workdir=a.workdir,
        progress_every=a.progress_every,
    )


def main(argv: list[str]) -> int:
    """Run, print the summary and what failed; 0 when clean, 1 otherwise."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    # aio-pika and aiormq narrate every reconnect of the publisher; the summary says enough.
    for noisy in ("aio_pika", "aiormq"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    result = asyncio.run(run(parse(argv)))
    print(result.summary)
    for failure in result.failures:
        print(f"FAILED: {failure}")
    print("chaos run: clean" if result.ok else f"chaos run: {len(result.failures)} problem(s)")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
