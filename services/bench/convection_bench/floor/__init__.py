"""The hand-written floor: the bench workload with aio-pika and asyncpg and nothing else.

What a careful engineer would write by hand for "S remote no-op steps in sequence", with the
guarantees Convection gives: every state change and the message it causes are one
transaction (a single statement: a CTE that updates the saga row and inserts the outbox row),
commands and replies are persistent and publisher-confirmed on durable quorum queues, a
delivery is acked only after its effect is committed (and, for the participant, after its
reply is confirmed), and the participant stores each outcome by idempotency key before it
replies, so redeliveries are harmless. An outbox sweeper republishes what a crash left behind.

Names: exchanges and queues start with `floor.`, tables with `floor_`. Run the processes with
`python -m convection_bench.floor orchestrator|participant` (see `__main__`).
"""
