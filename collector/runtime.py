"""The composition root: builds every part from Settings and wires them together.

`build_runtime()` checks the whole world before anything starts (forms, sinks, the live
mode's keys) and raises ConfigurationError listing every problem. `Runtime.start()` and
`Runtime.stop()` are the server's lifespan.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from collector.adapters.store.sqlite import SqliteStore
from collector.config import Settings, TelnyxEnv
from collector.core.forms import Form, FormRegistry, check_forms
from collector.core.session import events as E
from collector.core.session.decide import Decision, Policy
from collector.errors import ConfigurationError
from collector.metrics import Metrics
from collector.sinks import ConfiguredSink, build_sinks, sinks_for
from collector.workers.delivery import DeliveryWorker
from collector.workers.engine import Engine, Router
from collector.workers.outbox import CallControl, CommandOutbox
from collector.workers.timers import Timers

log = structlog.get_logger("collector")

PRUNE_EVERY_SECONDS = 3600.0


@dataclass
class Runtime:
    """Everything a running server holds."""

    settings: Settings
    telnyx: TelnyxEnv
    forms: FormRegistry
    sinks: dict[str, ConfiguredSink]
    store: SqliteStore
    engine: Engine
    metrics: Metrics
    public_key: str
    sandbox: Any = None  # collector.simulator.sandbox.Sandbox in sandbox mode
    control: CallControl | None = None
    outbox: CommandOutbox | None = None
    delivery: DeliveryWorker | None = None
    timers: Timers | None = None
    self_url: str | None = None
    delivery_listeners: list[Any] = field(default_factory=list)  # (sink, outcome, row) -> None
    _background: list[asyncio.Task[Any]] = field(default_factory=list)

    @property
    def mode(self) -> str:
        return "live" if self.telnyx.live else "sandbox"

    # -- lifespan -------------------------------------------------------------------

    async def start(self) -> None:
        await self.store.open()
        for configured in self.sinks.values():
            try:
                await configured.start()
            except Exception as exc:  # a sink that is down waits; the server goes on
                log.warning("sink_start_failed", sink=configured.name, error=str(exc)[:300])
        if self.control is None:
            self.control = self._make_control()
        from collector.adapters.telephony.transport import tls_context

        await asyncio.to_thread(tls_context)  # not in the event loop on the first command
        self.outbox = CommandOutbox(
            self.store,
            self.control,
            self.engine.handle,
            on_result=lambda action, outcome: self.metrics.count(
                self.metrics.commands, action, outcome
            ),
        )
        self.delivery = DeliveryWorker(self.store, self.sinks, on_result=self._on_delivery)
        self.timers = Timers(self.engine.handle)
        self.engine.listeners.append(self._on_decision)
        restored = await self.outbox.restore()
        for session in await self.store.sessions_with_deadlines():
            self.timers.track(session)
        self.delivery.start()
        self._background.append(asyncio.create_task(self._prune_loop(), name="prune"))
        log.info(
            "started",
            mode=self.mode,
            forms=sorted(self.forms),
            sinks=sorted(self.sinks),
            restored_commands=restored,
            timers=len(self.timers),
        )

    async def stop(self) -> None:
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        if self.outbox is not None:
            await self.outbox.close()
        if self.delivery is not None:
            await self.delivery.close()
        if self.timers is not None:
            self.timers.close()
        if self.sandbox is not None:
            await self.sandbox.close()
        close = getattr(self.control, "close", None)
        if close is not None:
            await close()
        for configured in self.sinks.values():
            try:
                await configured.close()
            except Exception:
                log.exception("sink_close_failed", sink=configured.name)
        await self.store.close()
        log.info("stopped")

    def _make_control(self) -> CallControl:
        from collector.adapters.telephony.control import TelnyxControl, make_client

        if self.telnyx.live:
            return TelnyxControl(make_client(self.telnyx.api_key, self.telnyx.base_url))
        if self.self_url is None:
            raise RuntimeError("sandbox mode needs the server's own URL before start")
        return TelnyxControl(make_client(None, f"{self.self_url}/_sandbox/telnyx/v2"))

    def _on_decision(self, event: E.Event, decision: Decision) -> None:
        session = decision.session
        if decision.commands and self.outbox is not None:
            self.outbox.enqueue(session.id, session.call.call_control_id, decision.commands)
        if self.timers is not None:
            self.timers.track(session)
        if decision.submission is not None:
            if self.delivery is not None:
                self.delivery.kick()
            log.info(
                "session_finalized",
                call_control_id=session.call.call_control_id,
                form=session.form,
                status=decision.submission["status"],
                submission_id=decision.submission["submission_id"],
                errors=[e["pointer"] for e in decision.submission["errors"]],
            )

    def _on_delivery(self, sink: str, outcome: str, row: Any) -> None:
        self.metrics.count(self.metrics.deliveries, sink, outcome)
        for listener in self.delivery_listeners:
            try:
                listener(sink, outcome, row)
            except Exception:
                log.exception("delivery_listener_failed", sink=sink)

    async def _prune_loop(self) -> None:
        while True:
            try:
                removed = await self.store.prune(time.time(), self.settings.retention_days)
                if removed:
                    log.info("pruned", sessions=removed)
            except Exception:
                log.exception("prune_failed")
            await asyncio.sleep(PRUNE_EVERY_SECONDS)


def build_runtime(
    settings: Settings,
    environ: Mapping[str, str],
    *,
    control: CallControl | None = None,
) -> Runtime:
    """Check forms, sinks and credentials; raise ConfigurationError with every problem."""
    telnyx = TelnyxEnv.from_env(environ)
    problems: list[str] = []
    forms, form_problems = check_forms(settings.forms_path)
    problems.extend(str(p) for p in form_problems)
    sinks, sink_problems = build_sinks(settings.sink_configs(), settings.base_dir, settings.source)
    problems.extend(sink_problems)
    for form in forms.values():
        for name in form.options.sinks or ():
            if name not in sinks and not sink_problems:
                problems.append(
                    f"{form.path}: /x-collector/sinks: no sink named {name!r}"
                    f" (configured: {', '.join(sorted(sinks))})"
                )
    routing = settings.routing
    for number, form_id in routing.numbers.items():
        if form_id not in forms and not form_problems:
            problems.append(
                f"{settings.source}: /routing/numbers/{number}: no form {form_id!r}"
                f" (forms: {', '.join(sorted(forms))})"
            )
    if routing.default_form and routing.default_form not in forms and not form_problems:
        problems.append(
            f"{settings.source}: /routing/default_form: no form {routing.default_form!r}"
            f" (forms: {', '.join(sorted(forms))})"
        )
    try:
        settings.sqlite_path  # noqa: B018 - validates database_url
    except ConfigurationError as exc:
        problems.extend(exc.problems)
    sandbox = None
    if telnyx.live:
        if not telnyx.public_key:
            problems.append(
                "(environment): /TELNYX_PUBLIC_KEY: live mode (TELNYX_API_KEY is set) needs"
                " TELNYX_PUBLIC_KEY to verify webhooks (Mission Control > Keys & Credentials)"
            )
        elif not _is_ed25519_public_key(telnyx.public_key):
            problems.append(
                "(environment): /TELNYX_PUBLIC_KEY: not a public key: expected the base64 of"
                " 32 bytes, as Mission Control shows it (Keys & Credentials > Public Key)"
            )
        public_key = telnyx.public_key or ""
    else:
        from collector.simulator.sandbox import Sandbox

        sandbox = Sandbox(pace=settings.sandbox_pace_seconds)
        public_key = sandbox.public_key
        ignored = [
            name
            for name, v in (
                ("TELNYX_PUBLIC_KEY", telnyx.public_key),
                ("TELNYX_BASE_URL", telnyx.base_url),
            )
            if v
        ]
        if ignored:
            log.warning(
                "telnyx_settings_ignored",
                ignored=ignored,
                reason="TELNYX_API_KEY is not set, so this is sandbox mode: webhooks are"
                " verified with the simulator's key and commands go to the simulator",
            )
    if problems:
        raise ConfigurationError(problems)

    metrics = Metrics()
    store = SqliteStore(
        settings.sqlite_path,
        synchronous=settings.database_synchronous,
        on_commit=metrics.observe_commit,
    )
    policy = Policy(
        hangup_grace_seconds=settings.hangup_grace_seconds,
        session_timeout_seconds=settings.session_timeout_seconds,
        default_voice=settings.default_voice,
    )

    def select(form: Form, status: str) -> list[str]:
        return sinks_for(sinks, form.options.sinks, status)

    router = Router(
        numbers=dict(routing.numbers),
        default_form=routing.default_form,
        extra=sandbox.numbers if sandbox is not None else None,
    )
    engine = Engine(store=store, forms=forms, router=router, policy=policy, sinks_for=select)
    engine.on_dead = metrics.count_dead
    runtime = Runtime(
        settings=settings,
        telnyx=telnyx,
        forms=forms,
        sinks=sinks,
        store=store,
        engine=engine,
        metrics=metrics,
        public_key=public_key,
        sandbox=sandbox,
        control=control,
    )
    if sandbox is not None:
        sandbox.attach(runtime)
    return runtime


def _is_ed25519_public_key(value: str) -> bool:
    try:
        return len(base64.b64decode(value, validate=True)) == 32
    except (binascii.Error, ValueError):
        return False


def mode_reason(telnyx: TelnyxEnv) -> str:
    """Why the server runs in the mode it does, for the first log line."""
    if telnyx.live:
        where = telnyx.base_url or "https://api.telnyx.com/v2"
        return f"live: TELNYX_API_KEY is set; commands go to {where}"
    return "sandbox: TELNYX_API_KEY is not set; a built-in Telnyx simulator plays the calls"
