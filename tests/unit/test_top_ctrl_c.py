"""`convection top`'s Ctrl-C: a SIGINT that lands in a fetch which absorbs its cancellation.

Under the full suite's load the e2e test saw top ignore a Ctrl-C for 20 s. One way that
happens: `asyncio.run` turns a SIGINT into a cancellation and raises KeyboardInterrupt only if
its task ends cancelled, so a fetch that absorbs the cancel (Python 3.11's `wait_for` returns
a result that completed as it was cancelled) loses the Ctrl-C. These tests make that happen.
"""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from convection.operator_top import _CtrlC


async def _absorbing() -> str:
    # A library's wait that completes as the cancel arrives and returns its result anyway.
    os.kill(os.getpid(), signal.SIGINT)
    try:
        await asyncio.sleep(5)
    except asyncio.CancelledError:
        return "absorbed"
    return "slept"


def test_asyncio_run_alone_loses_a_ctrl_c_the_fetch_absorbs() -> None:
    # The cause, shown: nothing is raised, the program goes on as if no key was pressed.
    # Python's own handler, whatever this process inherited (a background job ignores SIGINT).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        assert asyncio.run(_absorbing()) == "absorbed"
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_ctrl_c_absorbed_by_the_fetch_is_still_remembered() -> None:
    ctrl_c = _CtrlC()
    with ctrl_c.installed():
        assert asyncio.run(ctrl_c.guard(_absorbing())) == "absorbed"
    assert ctrl_c.hit


def test_a_ctrl_c_during_a_fetch_cancels_it_at_once() -> None:
    async def slow() -> str:
        os.kill(os.getpid(), signal.SIGINT)
        await asyncio.sleep(5)
        return "slept"

    ctrl_c = _CtrlC()
    # Cancelled, and the cancellation ends the fetch as the Ctrl-C it was.
    with ctrl_c.installed(), pytest.raises(KeyboardInterrupt):
        asyncio.run(ctrl_c.guard(slow()))
    assert ctrl_c.hit


def test_a_fetch_that_fails_after_a_ctrl_c_quits_quietly() -> None:
    async def unreachable() -> str:
        os.kill(os.getpid(), signal.SIGINT)
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            raise ConnectionError("the API went away meanwhile") from None
        return "slept"

    ctrl_c = _CtrlC()
    with ctrl_c.installed(), pytest.raises(KeyboardInterrupt):
        asyncio.run(ctrl_c.guard(unreachable()))


def test_a_second_ctrl_c_between_fetches_does_not_raise_again() -> None:
    ctrl_c = _CtrlC()
    with ctrl_c.installed():
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
        # While the terminal is being restored: the first one is on its way out already.
        os.kill(os.getpid(), signal.SIGINT)
    assert ctrl_c.hit


def test_a_ctrl_c_between_fetches_raises_and_the_old_handler_comes_back() -> None:
    before = signal.getsignal(signal.SIGINT)
    ctrl_c = _CtrlC()
    with ctrl_c.installed(), pytest.raises(KeyboardInterrupt):
        # The handler runs as soon as the call returns, outside any fetch.
        os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before
