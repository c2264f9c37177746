"""The chaos run: many OSM sagas while a monkey kills and restarts the system under them.

`python -m tests.chaos --help` lists the options. One run:

1. starts a private PostgreSQL cluster and a private RabbitMQ node on free loopback ports
   (`tests.faults.private`; the machine's shared servers are never touched), gives every
   process its own broker user (`coordinator.broker_setup.grants`, as `convection broker
   setup` does), and spawns two coordinators, the three real adapters and the VIM simulator;
2. runs chains of sagas (`tests.chaos.scenarios`): VIM accounts created and deleted, bad
   credentials, NS lifecycles (instantiate, scale out, terminate), NSs and scale-outs over
   their project's quota that must compensate, an instantiate superseded by a terminate;
3. meanwhile SIGKILLs a random coordinator, adapter or the VIM simulator every few seconds and
   restarts it, and now and then restarts the broker or the database (`tests.chaos.monkey`);
4. once the chaos window is over, brings everything up, waits for every chain to end and the
   outbox to drain, runs the checker, and prints a summary (`tests.chaos.report`).

The run exits non-zero when a checker figure is not zero or a saga did not end as its
scenario expects.
"""
