"""Fixtures for notifier tests."""

from __future__ import annotations

import pytest
import trio.testing


@pytest.fixture
def io_clock() -> trio.testing.MockClock:
    """Virtual time that jumps only after 250 ms of real idleness.

    These tests do real socket I/O and run smtplib in a thread; with a zero threshold the clock would jump
    to the next deadline (an attempt timeout) while a reply is merely in flight.
    """
    return trio.testing.MockClock(autojump_threshold=0.25)
