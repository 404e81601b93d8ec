"""The soak run's verdict from its samples: per-minute rates, the rate held, RSS flat."""

from __future__ import annotations

from soak.steady import SAMPLE_SECONDS, Sample, SoakRun


def run_of(rates: list[float], rss: list[float] | None = None, warmup: float = 1.0) -> SoakRun:
    """A run whose 5 s samples carry these webhook rates (and RSS figures)."""
    run = SoakRun(minutes=len(rates) * SAMPLE_SECONDS / 60, warmup_minutes=warmup, rate=200)
    rss = rss or [100.0] * len(rates)
    run.samples = [
        Sample(i * SAMPLE_SECONDS, rss[i], int(r * SAMPLE_SECONDS), r, i * 0.25, i * 0.1, 1.0)
        for i, r in enumerate(rates)
    ]
    return run


def test_a_run_at_the_target_passes_and_reports_whole_minutes() -> None:
    run = run_of([0.0] + [200.0] * 48)  # 4 minutes of samples after t=0
    assert run.minute_rates() == [200.0, 200.0, 200.0]  # the first minute is the warm-up
    assert run.median_minute_rate() == 200.0
    assert [round(x, 6) for x in run.cpu_shares()] == [0.05, 0.02]
    assert run.problems() == []


def test_a_run_that_falls_short_of_the_rate_fails() -> None:
    run = run_of([0.0] + [200.0] * 12 + [150.0] * 36)
    assert run.median_minute_rate() == 150.0
    assert run.problems() == ["the rate was not held: 150.0 events/s (target 200)"]


def test_rss_that_grows_after_the_warm_up_fails() -> None:
    rss = [100.0] * 13 + [100.0 + i for i in range(36)]
    run = run_of([0.0] + [200.0] * 48, rss)
    assert round(run.rss_deviation(), 6) == 0.35
    assert [p.split(" after")[0] for p in run.problems()] == ["RSS grew 35.0%"]
