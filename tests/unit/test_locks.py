"""Resource locks: FIFO waiters, reject, supersede, all-or-nothing grants."""

from __future__ import annotations

from coordinator.core import locks
from coordinator.core.locks import Claimant
from sagas import LockPolicy

A = Claimant("a", "ns.instantiate")
B = Claimant("b", "ns.scale-out")
C = Claimant("c", "ns.terminate")


def test_first_comer_holds_and_others_wait_in_order() -> None:
    got = locks.acquire({}, A, ["ns:1"], LockPolicy.WAIT)
    assert got.granted
    got_b = locks.acquire(got.table, B, ["ns:1"], LockPolicy.WAIT)
    assert not got_b.granted
    assert got_b.position == 1
    got_c = locks.acquire(got_b.table, C, ["ns:1"], LockPolicy.WAIT)
    assert got_c.position == 2
    again = locks.acquire(got_c.table, C, ["ns:1"], LockPolicy.WAIT)
    assert again.position == 2  # asking twice keeps the place in line
    released = locks.release(got_c.table, "a")
    assert released.granted == (B,)
    assert released.table["ns:1"].holder == B
    assert released.table["ns:1"].position("c") == 1


def test_reject_policy_names_the_blocker() -> None:
    table = locks.acquire({}, A, ["vim:1"], LockPolicy.WAIT).table
    got = locks.acquire(table, B, ["vim:1"], LockPolicy.REJECT)
    assert not got.granted
    assert got.rejected_by == A
    assert got.table["vim:1"].waiters == ()


def test_supersede_cancels_listed_holders_and_goes_first() -> None:
    table = locks.acquire({}, A, ["ns:1"], LockPolicy.WAIT).table
    table = locks.acquire(table, B, ["ns:1"], LockPolicy.WAIT).table
    got = locks.acquire(table, C, ["ns:1"], LockPolicy.SUPERSEDE, ("ns.instantiate",))
    assert got.cancel == (A,)
    assert got.position == 1
    got2 = locks.acquire(
        {"ns:1": locks.LockQueue("ns:1", (B,))},
        C,
        ["ns:1"],
        LockPolicy.SUPERSEDE,
        ("ns.instantiate",),
    )
    assert got2.cancel == ()  # a scale-out holder is waited for, not cancelled


def test_several_resources_are_granted_all_at_once_or_not_at_all() -> None:
    table = locks.acquire({}, A, ["r1"], LockPolicy.WAIT).table
    got = locks.acquire(table, B, ["r1", "r2"], LockPolicy.WAIT)
    assert not got.granted
    assert got.table["r2"].holder is None  # not half-held: r2 waits for r1
    # It waits for what it cannot have (issue 11): r2 is free and B first in line for it.
    assert got.waiting_for == ("r1",)
    got_c = locks.acquire(got.table, C, ["r2"], LockPolicy.WAIT)
    assert not got_c.granted  # B is first in line for r2
    out = locks.release(got_c.table, "a")
    assert out.granted == (B,)
    assert locks.holders(out.table) == {"r1": "b", "r2": "b"}
    out = locks.release(out.table, "b")
    assert out.granted == (C,)


def test_release_of_a_waiter_leaves_the_line() -> None:
    table = locks.acquire({}, A, ["r"], LockPolicy.WAIT).table
    table = locks.acquire(table, B, ["r"], LockPolicy.WAIT).table
    out = locks.release(table, "b")
    assert out.granted == ()
    assert out.table["r"].waiters == ()
    assert out.table["r"].holder == A
