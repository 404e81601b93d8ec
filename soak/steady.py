"""The soak run: whole simulated calls at a steady rate of webhooks for a long while,
through one `collector serve` (live mode, fake Telnyx, three sinks), its RSS sampled.

The fake Telnyx plays each call (it answers the server's commands with the webhooks
Telnyx would send), so the webhook rate is set by how often a call starts: one call's
webhooks are counted first (a trial call), then calls start every
`webhooks_per_call / rate` seconds on a fixed schedule. Every `SAMPLE_SECONDS` the
server's VmRSS and the webhooks sent since the last sample are recorded.

Passes when, after the warm-up, the highest RSS sample is within 10% of the lowest, every
call's submission reached every sink exactly once, no webhook got a 5xx or no answer,
and nothing was given up on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from soak.checks import Accumulator, Tally, delivered_everywhere, jsonl_lines, tally
from soak.stack import Stack, stack, until

SAMPLE_SECONDS = 5.0
RSS_TOLERANCE = 0.10
PACE = 0.1  # seconds between one call's webhooks
# webhooks the fake may have queued but not yet delivered before a new call waits: an
# open-loop driver that falls behind piles up calls until its HTTP pool thrashes
MAX_BACKLOG = 256


@dataclass
class Sample:
    at: float  # seconds since the load began
    rss_mb: float
    events: int  # webhooks the fake sent (first attempts) since the previous sample
    events_per_s: float


@dataclass
class SoakRun:
    minutes: float
    warmup_minutes: float
    rate: float
    webhooks_per_call: int = 0
    samples: list[Sample] = field(default_factory=list)
    tally: Tally = field(default_factory=Tally)
    drained: bool = True
    load_seconds: float = 0.0
    late_calls: int = 0  # calls the driver placed over 1 s behind schedule

    def mean_rate(self, after_warmup: bool = False) -> float:
        """Webhooks per second between the first and last sample (of the steady part)."""
        samples = self.steady() if after_warmup else self.samples
        if len(samples) < 2:
            return 0.0
        span = samples[-1].at - samples[0].at
        return sum(s.events for s in samples[1:]) / max(span, 1e-9)

    def steady(self) -> list[Sample]:
        return [s for s in self.samples if s.at >= self.warmup_minutes * 60]

    def rss_spread(self) -> tuple[float, float, float]:
        """(lowest, highest, growth of highest over lowest) after the warm-up."""
        rss = [s.rss_mb for s in self.steady()]
        if not rss:
            return 0.0, 0.0, 0.0
        return min(rss), max(rss), max(rss) / min(rss) - 1

    def problems(self) -> list[str]:
        out = self.tally.problems()
        low, high, growth = self.rss_spread()
        if not self.steady():
            out.append("no RSS sample after the warm-up")
        elif growth > RSS_TOLERANCE:
            out.append(f"RSS grew {growth:.1%} after the warm-up ({low:.1f} -> {high:.1f} MiB)")
        fivexx = sum(n for k, n in self.tally.webhook_attempts.items() if k.startswith("5"))
        if fivexx:
            out.append(f"{fivexx} webhook attempts got a 5xx")
        silent = sum(n for k, n in self.tally.webhook_attempts.items() if k.startswith("no"))
        if silent:
            out.append(f"{silent} webhook attempts got no answer")
        if not self.drained:
            out.append("not every delivery arrived after the load stopped")
        return out


def rows(run: SoakRun) -> list[tuple[str, str]]:
    low, high, growth = run.rss_spread()
    rates = [s.events_per_s for s in run.steady()[1:]]
    steady = run.steady()
    first = steady[0].rss_mb if steady else 0.0
    last = run.samples[-1].rss_mb if run.samples else 0.0
    return [
        ("load", f"{run.load_seconds / 60:.1f} min, warm-up {run.warmup_minutes:g} min"),
        ("webhooks per call", str(run.webhooks_per_call)),
        ("calls placed over 1 s late (driver behind)", str(run.late_calls)),
        ("events/s target / mean over the load / after warm-up",
         f"{run.rate:g} / {run.mean_rate():.1f} / {run.mean_rate(after_warmup=True):.1f}"),
        ("events/s per 5 s sample after warm-up: min / max",
         f"{min(rates, default=0):.0f} / {max(rates, default=0):.0f}"),
        ("RSS samples (after warm-up)", f"{len(run.samples)} ({len(steady)})"),
        ("RSS after warm-up: first / low / high / last",
         f"{first:.1f} / {low:.1f} / {high:.1f} / {last:.1f} MiB"),
        ("RSS growth, high over low", f"{growth:.1%} (limit {RSS_TOLERANCE:.0%})"),
    ]  # fmt: skip


async def _trial(st: Stack) -> int:
    """One call alone; how many webhooks it took."""
    before = len(st.fake.deliveries)
    await st.place_call(0)
    await until(lambda: jsonl_lines(st.jsonl) >= 1, timeout=60)
    await asyncio.wait_for(st.fake.idle(), 60)
    return sum(1 for d in st.fake.deliveries[before:] if d.attempt == 1)


async def run(
    workdir: Path,
    minutes: float,
    rate: float,
    warmup_minutes: float | None = None,
    log: Callable[[str], None] = print,
) -> SoakRun:
    warmup = warmup_minutes if warmup_minutes is not None else max(1.0, minutes / 6)
    result = SoakRun(minutes=minutes, warmup_minutes=warmup, rate=rate)
    acc = Accumulator()
    async with stack(workdir, pace=PACE) as st:
        result.webhooks_per_call = per_call = await _trial(st)
        acc.absorb(st.fake)
        every = per_call / rate
        loop = asyncio.get_running_loop()
        start = loop.time()
        end = start + minutes * 60
        stop = asyncio.Event()

        async def sampler() -> None:
            last = loop.time()
            while True:
                new, _ = acc.absorb(st.fake)
                now = loop.time()
                result.samples.append(
                    Sample(now - start, st.server.rss_mb(), new, new / max(now - last, 1e-9))
                )
                last = now
                if len(result.samples) % 12 == 1:  # about once a minute
                    x = result.samples[-1]
                    rss, eps = f"{x.rss_mb:6.1f} MiB", f"{x.events_per_s:5.0f} events/s"
                    log(f"  {x.at / 60:5.1f} min  RSS {rss}  {eps}")
                try:
                    await asyncio.wait_for(stop.wait(), SAMPLE_SECONDS)
                    return
                except TimeoutError:
                    pass

        sampling = asyncio.create_task(sampler())
        i = 1
        due = start
        while due < end:
            delay = due - loop.time()
            # a late driver never bursts to catch up (placing a call does not yield, so a
            # burst would starve the fake's own webhooks) and waits while its backlog is
            # long: the schedule slips; `late_calls` counts calls placed over 1 s late
            await asyncio.sleep(max(delay, 0))
            while st.fake.sender.pending > MAX_BACKLOG:  # the driver is behind: no new call
                await asyncio.sleep(0.05)
            delay = due - loop.time()
            if delay < -1.0:
                result.late_calls += 1
                due = loop.time()
            await st.place_call(i)
            i += 1
            due += every
        result.load_seconds = loop.time() - start
        stop.set()
        await sampling
        try:
            await until(lambda: delivered_everywhere(st), timeout=300, interval=1.0)
            await asyncio.wait_for(st.fake.idle(), 120)
            await asyncio.sleep(3.0)
        except TimeoutError:
            result.drained = False
        result.tally = tally(st, acc)
    return result
