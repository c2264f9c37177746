"""`python -m convection_bench.floor orchestrator|participant`: run one floor process.

Arguments override the environment: FLOOR_AMQP_URL, FLOOR_DB_URL (postgresql://...),
FLOOR_PREFETCH (default 32), FLOOR_POOL_SIZE (default 8), FLOOR_LOG_LEVEL (default WARNING).
Runs until SIGTERM; with CONVECTION_BENCH_STATS_FILE set it then writes its counters there.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from convection_bench.floor import orchestrator, participant
from convection_bench.floor.common import Settings


def parse(argv: list[str]) -> tuple[str, Settings]:
    """Return the role and the settings from `argv` and the environment."""
    env = os.environ.get
    parser = argparse.ArgumentParser(prog="python -m convection_bench.floor")
    parser.add_argument("role", choices=("orchestrator", "participant"))
    parser.add_argument("--amqp-url", default=env("FLOOR_AMQP_URL"))
    parser.add_argument("--db-url", default=env("FLOOR_DB_URL"))
    parser.add_argument("--prefetch", type=int, default=int(env("FLOOR_PREFETCH", "32")))
    parser.add_argument("--pool-size", type=int, default=int(env("FLOOR_POOL_SIZE", "8")))
    args = parser.parse_args(argv)
    if not args.amqp_url or not args.db_url:
        parser.error("give --amqp-url and --db-url (or FLOOR_AMQP_URL and FLOOR_DB_URL)")
    if args.prefetch < 1 or args.pool_size < 1:
        parser.error("--prefetch and --pool-size must be at least 1")
    return args.role, Settings(args.amqp_url, args.db_url, args.prefetch, args.pool_size)


def main() -> None:
    """Entry point of `python -m convection_bench.floor`."""
    role, settings = parse(sys.argv[1:])
    logging.basicConfig(
        level=os.environ.get("FLOOR_LOG_LEVEL", "WARNING").upper(),
        format=f"%(asctime)s floor-{role} %(levelname)s %(message)s",
    )
    runner = orchestrator.run if role == "orchestrator" else participant.run
    asyncio.run(runner(settings))


if __name__ == "__main__":
    main()
