"""The chaos test hands its summary to pytest's closing report, so CI's log shows the figures."""

from __future__ import annotations

from collections.abc import Callable

import pytest

_SUMMARIES = pytest.StashKey[list[str]]()


@pytest.fixture
def chaos_summary(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Keep a run's summary for the end of the session (a passing test's output is hidden)."""
    return request.config.stash.setdefault(_SUMMARIES, []).append


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    """Print every chaos run's summary after the test results."""
    for text in config.stash.get(_SUMMARIES, []):
        terminalreporter.write_sep("=", "chaos run")
        terminalreporter.write_line(text)
