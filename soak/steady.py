"""The soak run: whole simulated calls at a steady rate of webhooks for a long while,
through one `collector serve` (live mode, fake Telnyx, three sinks), its RSS sampled.

The fake Telnyx plays each call (it answers the server's commands with the webhooks
Telnyx would send), so the webhook rate is set by how often a call starts: one call's
webhooks are counted first (a trial call), then calls start every
`webhooks_per_call / rate` seconds on a fixed schedule. Every `SAMPLE_SECONDS` the
server's VmRSS, the webhooks sent since the last sample, the CPU time the server and
this driver have used and the machine's load average are recorded.

Passes when, after the warm-up, the median of the per-minute rates is within 5% of the
target, the highest RSS sample is within 10% of the lowest, every call's submission
reached every sink exactly once, no webhook got a 5xx or no answer, and nothing was
given up on.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from soak.checks import Accumulator, Tally, delivered_everywhere, jsonl_lines, tally
from soak.stack import Stack, stack, until

SAMPLE_SECONDS = 5.0
RSS_TOLERANCE = 0.10
RATE_TOLERANCE = 0.05  # the median minute may fall this far short of the target
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
    server_cpu: float = 0.0  # CPU seconds the server has used (all its threads), so far
    driver_cpu: float = 0.0  # CPU seconds this process (the fake Telnyx, the callers) has
    load1: float = 0.0  # the machine's 1-minute load average


def driver_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


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

    def minute_rates(self) -> list[float]:
        """Webhooks per second over each whole minute after the warm-up."""
        steady = self.steady()
        rates, begin = [], 0
        for i in range(1, len(steady)):
            span = steady[i].at - steady[begin].at
            if span >= 60 - SAMPLE_SECONDS / 2:
                rates.append(sum(s.events for s in steady[begin + 1 : i + 1]) / span)
                begin = i
        return rates

    def median_minute_rate(self) -> float:
        rates = self.minute_rates()
        return statistics.median(rates) if rates else self.mean_rate(after_warmup=True)

    def cpu_shares(self) -> tuple[float, float]:
        """(server, driver) CPU seconds per second after the warm-up (1.0: one core)."""
        steady = self.steady()
        if len(steady) < 2:
            return 0.0, 0.0
        a, b = steady[0], steady[-1]
        span = max(b.at - a.at, 1e-9)
        return (b.server_cpu - a.server_cpu) / span, (b.driver_cpu - a.driver_cpu) / span

    def rss_spread(self) -> tuple[float, float, float]:
        """(lowest, highest, growth of highest over lowest) after the warm-up."""
        rss = [s.rss_mb for s in self.steady()]
        if not rss:
            return 0.0, 0.0, 0.0
        return min(rss), max(rss), max(rss) / min(rss) - 1

    def rss_deviation(self) -> float:
        """The largest distance of an RSS sample from the first one after the warm-up."""
        rss = [s.rss_mb for s in self.steady()]
        return max(abs(r - rss[0]) for r in rss) / rss[0] if rss else 0.0

    def problems(self) -> list[str]:
        out = self.tally.problems()
        low, high, growth = self.rss_spread()
        if not self.steady():
            out.append("no RSS sample after the warm-up")
        elif growth > RSS_TOLERANCE:
            out.append(f"RSS grew {growth:.1%} after the warm-up ({low:.1f} -> {high:.1f} MiB)")
        median = self.median_minute_rate()
        if self.steady() and median < self.rate * (1 - RATE_TOLERANCE):
            out.append(f"the rate was not held: {median:.1f} events/s (target {self.rate:g})")
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
    minutes = run.minute_rates()
    steady = run.steady()
    first = steady[0].rss_mb if steady else 0.0
    last = run.samples[-1].rss_mb if run.samples else 0.0
    server, driver = run.cpu_shares()
    loads = [s.load1 for s in run.samples] or [0.0]
    return [
        ("load", f"{run.load_seconds / 60:.1f} min, warm-up {run.warmup_minutes:g} min"),
        ("webhooks per call", str(run.webhooks_per_call)),
        ("calls placed over 1 s late (driver behind)", str(run.late_calls)),
        ("events/s target / mean over the load / after warm-up",
         f"{run.rate:g} / {run.mean_rate():.1f} / {run.mean_rate(after_warmup=True):.1f}"),
        ("events/s per minute after warm-up: median / min / max",
         f"{run.median_minute_rate():.1f} / {min(minutes, default=0):.1f}"
         f" / {max(minutes, default=0):.1f} ({len(minutes)} min)"),
        ("events/s per 5 s sample after warm-up: min / max",
         f"{min(rates, default=0):.0f} / {max(rates, default=0):.0f}"),
        ("RSS samples (after warm-up)", f"{len(run.samples)} ({len(steady)})"),
        ("RSS after warm-up: first / low / high / last",
         f"{first:.1f} / {low:.1f} / {high:.1f} / {last:.1f} MiB"),
        ("RSS growth, high over low", f"{growth:.1%} (limit {RSS_TOLERANCE:.0%})"),
        ("RSS largest deviation from the first after warm-up", f"{run.rss_deviation():.1%}"),
        ("CPU after warm-up, cores: server / driver", f"{server:.2f} / {driver:.2f}"),
        ("machine load average (1 min): min / median / max",
         f"{min(loads):.2f} / {statistics.median(loads):.2f} / {max(loads):.2f}"
         f" on {os.cpu_count()} CPUs"),
    ]  # fmt: skip


async def _trial(st: Stack) -> int:
    """One call alone; how many webhooks it took."""
    before = len(st.fake.deliveries)
    ccid = await st.place_call(0)
    await until(lambda: jsonl_lines(st.jsonl) >= 1, timeout=60)
    # the fake is idle for a moment between the submission and the server's hangup (its
    # grace): wait for the call's end, or its call.hangup goes uncounted
    await until(lambda: st.fake.calls[ccid].end_time is not None, timeout=60)
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
    async with stack(workdir, pace=PACE, cheap_http=True) as st:
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
                x = Sample(
                    now - start,
                    st.server.rss_mb(),
                    new,
                    new / max(now - last, 1e-9),
                    st.server.cpu_seconds(),
                    driver_cpu(),
                    os.getloadavg()[0],
                )
                result.samples.append(x)
                last = now
                if len(result.samples) % 12 == 1:  # about once a minute: that minute's figures
                    ago = result.samples[-13] if len(result.samples) > 12 else result.samples[0]
                    span = max(x.at - ago.at, 1e-9)
                    eps = sum(s.events for s in result.samples[-12:]) / span if x.at else 0.0
                    cpu = (
                        (x.server_cpu - ago.server_cpu) / span,
                        (x.driver_cpu - ago.driver_cpu) / span,
                    )
                    log(
                        f"  {x.at / 60:5.1f} min  RSS {x.rss_mb:6.1f} MiB  {eps:5.1f} events/s"
                        f"  CPU server {cpu[0]:.2f} driver {cpu[1]:.2f}  load {x.load1:.2f}"
                    )
                if stop.is_set():
                    return
                with contextlib.suppress(TimeoutError):  # a last sample when the load stops
                    await asyncio.wait_for(stop.wait(), SAMPLE_SECONDS)

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
