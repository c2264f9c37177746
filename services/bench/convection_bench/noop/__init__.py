"""The bench saga package: `bench.noop` (S remote no-op steps) and its echo participant.

Offered like any team's saga package: `noop.sagas` through the `convection.sagas` entry point
`bench` (three steps, the issue's workload) or as a `module:attr` reference for another
number of steps (`convection_bench.noop.sagas:steps_5`); `noop.participant:echo` is run by
`convection participant convection_bench.noop.participant:echo`. Only the public interfaces
of the platform are used: `contracts`, `sagas` and `convection`.
"""
