"""RetryPolicy: exponential backoff with jitter from base to cap, and the attempt budget.

The policy draws its jitter from the `random` module (it takes no generator of its own), so
a seeded `random` makes its delays repeat. What the worker does with max_attempts and
max_age_seconds (dead past either) is in test_delivery.py.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collector.workers.delivery import RetryPolicy


@pytest.fixture(name="seeded")
def _seeded() -> Iterator[None]:
    """`random` seeded for the test, and put back as it was after it."""
    state = random.getstate()
    random.seed(20260101)
    try:
        yield
    finally:
        random.setstate(state)


def ceiling(policy: RetryPolicy, attempts: int) -> float:
    return min(policy.cap_seconds, policy.base_seconds * 2 ** max(0, attempts - 1))


DOCUMENTED_CEILINGS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]  # after attempts 1..11


def test_the_defaults_are_the_documented_budget() -> None:
    """README: 1 s doubling to 5 min, 12 attempts or 24 hours, per-sink concurrency."""
    policy = RetryPolicy()
    assert policy.base_seconds == 1.0
    assert policy.cap_seconds == 300.0
    assert policy.max_attempts == 12
    assert policy.max_age_seconds == 86400.0
    assert policy.per_sink_concurrency == 8


def test_the_default_delays_double_from_one_second_to_five_minutes(seeded: None) -> None:
    """After attempt n the wait is between half the ceiling and the ceiling, spread over
    that window (jitter), the ceiling doubling from 1 s and held at 300 s."""
    policy = RetryPolicy()
    for attempts, high in enumerate(DOCUMENTED_CEILINGS, start=1):
        delays = [policy.delay(attempts) for _ in range(200)]
        assert all(high / 2 <= d <= high for d in delays), attempts
        assert min(delays) < 0.6 * high and max(delays) > 0.9 * high, attempts


def test_the_cap_holds_however_many_attempts(seeded: None) -> None:
    policy = RetryPolicy(base_seconds=1.0, cap_seconds=300.0)
    for attempts in (10, 11, 50, 500, 1000):
        delay = policy.delay(attempts)
        assert 150.0 <= delay <= 300.0


def test_attempts_below_one_wait_like_the_first(seeded: None) -> None:
    policy = RetryPolicy(base_seconds=4.0)
    for attempts in (0, -3):
        assert 2.0 <= policy.delay(attempts) <= 4.0


def test_a_seeded_random_repeats_the_same_delays() -> None:
    policy = RetryPolicy()
    state = random.getstate()
    try:
        random.seed(7)
        first = [policy.delay(n) for n in range(1, 13)]
        random.seed(7)
        again = [policy.delay(n) for n in range(1, 13)]
        random.seed(8)
        other = [policy.delay(n) for n in range(1, 13)]
    finally:
        random.setstate(state)
    assert first == again
    assert first != other


def test_the_policy_is_a_frozen_value() -> None:
    policy = RetryPolicy(max_attempts=3)
    with pytest.raises(AttributeError):
        policy.max_attempts = 4  # type: ignore[misc]
    assert policy == RetryPolicy(max_attempts=3)


@given(
    base=st.floats(min_value=0.001, max_value=600.0),
    extra=st.floats(min_value=0.0, max_value=3600.0),
    attempts=st.integers(min_value=1, max_value=1000),
)
def test_any_delay_is_within_its_jitter_window_and_never_above_the_cap(
    base: float, extra: float, attempts: int
) -> None:
    policy = RetryPolicy(base_seconds=base, cap_seconds=base + extra)
    high = ceiling(policy, attempts)
    delay = policy.delay(attempts)
    assert high / 2 <= delay <= high <= policy.cap_seconds
    assert delay >= min(base, policy.cap_seconds) / 2  # never shorter than the first wait
