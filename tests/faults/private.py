"""Private PostgreSQL clusters and RabbitMQ nodes for fault tests, plus process helpers.

Fault tests stop, kill and freeze their broker and database. The machine's shared servers
(RabbitMQ on 5672, PostgreSQL on 5432) serve other test runs at the same time, so a fault
test never touches them: it starts servers of its own, on free loopback ports, with data in a
temporary folder that `close()` removes even when the test fails.

Why each piece of isolation is needed:

* Ports come from below the ephemeral range, so no outgoing connection on the machine can
  take a port while a server is down between `stop()` and `start()` (clients reconnect to the
  same URL).
* PostgreSQL runs as the `postgres` OS user (initdb and the postmaster refuse root), with
  trust auth on loopback only and its unix socket in its own folder (the default
  /var/run/postgresql belongs to the shared cluster). fsync and synchronous_commit stay on:
  tests about crashes are worthless on a cluster that may lose committed rows.
* We signal the postmaster ourselves (SIGTERM/SIGINT/SIGQUIT are pg_ctl's smart/fast/immediate)
  so it stays our child; "kill" SIGKILLs its whole process group, because backends orphaned
  by a dead postmaster keep the shared memory attached and would block the next start.
* RabbitMQ's scripts read /etc/rabbitmq/rabbitmq-env.conf (NODENAME=rabbit@localhost) and
  /etc/rabbitmq/rabbitmq.conf (listener 5672): RABBITMQ_CONF_ENV_FILE=/dev/null and a
  RABBITMQ_CONFIG_FILE of our own (3.10 takes the path without ".conf") keep both away.
  The node gets its own name, AMQP port, distribution port (else it would be AMQP+20000),
  mnesia/log folders, an empty plugin list and a small memory and WAL budget.
* Erlang nodes and CLI tools authenticate by the cookie in $HOME/.erlang.cookie. The node
  runs as the `rabbitmq` user with HOME in its temp folder and a fresh cookie, and every
  rabbitmqctl call uses the same user and HOME. /usr/sbin/rabbitmqctl must not be used: run
  as root it `su`s to rabbitmq with HOME=/var/lib/rabbitmq, i.e. the shared node's cookie.
  Both node and CLI bind Erlang distribution to 127.0.0.1, as the shared node does.
* A halt is complete only when the ports are closed and (RabbitMQ) epmd has dropped the node
  name: a SIGKILLed beam.smp's main thread turns zombie while its other threads still hold
  the listeners, and a node started before epmd forgets the old one cannot register its name.
* RabbitMQ 3.10 writes its Ra server registry to disk lazily, so `PrivateRabbit.kill()` first
  flushes it (see `flush_metadata`); otherwise a quorum queue declared less than a second
  before the crash comes back without a leader, for good.
* Servers run in their own session, so freeze/kill reach every process of the server, and a
  folder left by a test process killed outright is recognised by its owner pid and reaped
  (server killed, folder removed) the next time a private server is created.

Starting a private node costs a few seconds (see `start_seconds`): share one per test module
and call `ensure_running()` in a per-test fixture.
"""

from __future__ import annotations

from tests.faults._postgres import PrivatePostgres, postgres_bin
from tests.faults._process_group import ProcessGroup, Service
from tests.faults._procs import (
    await_port,
    free_port,
    freeze,
    kill_group,
    port_open,
    process_state,
    reap_orphans,
    thaw,
    wait_port,
)
from tests.faults._rabbit import PrivateRabbit
from tests.faults._server import PrivateServer, ServerFailed

__all__ = [
    "PrivatePostgres",
    "PrivateRabbit",
    "PrivateServer",
    "ProcessGroup",
    "ServerFailed",
    "Service",
    "await_port",
    "free_port",
    "freeze",
    "kill_group",
    "port_open",
    "postgres_bin",
    "process_state",
    "reap_orphans",
    "thaw",
    "wait_port",
]
