"""The composition root: builds every part from Settings and wires them together.

`build_runtime()` checks the whole world before anything starts (forms, sinks, the live
mode's keys) and raises ConfigurationError listing every problem; it builds the store, the
engine and the sandbox. `Runtime.start()` and `Runtime.stop()` are the server's lifespan:
start() makes the command client and the workers (outbox, delivery, timers) and wires
them to the engine's decisions; with a store several instances share (PostgreSQL), the
workers claim their work under leases this instance renews, and wake on the store's
notices (collector.workers.crew). This is the one module, besides the CLI, that names the
concrete store and the Telnyx client; the workers see only collector.ports. An edge that
wants to hear decisions or deliveries (the live hub) asks `Runtime.subscribe()`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

from collector.adapters.store.database import make_store
from collector.config import DatabaseUrl, Settings, TelnyxEnv
from collector.core.forms import Form, FormRegistry, check_forms
from collector.core.session import events as E
from collector.core.session.decide import Decision, Policy
from collector.errors import ConfigurationError
from collector.metrics import Metrics
from collector.ports import CallControl, ClaimStore, Clock, SessionStore
from collector.records import DeliveryRow
from collector.sinks import ConfiguredSink, build_sinks, sinks_for
from collector.workers.crew import Workers, make_workers
from collector.workers.delivery import DeliveryListener
from collector.workers.engine import SESSION_CACHE_BYTES, Engine, Listener, Router

if TYPE_CHECKING:
    from collector.simulator.sandbox import Sandbox

log = structlog.get_logger("collector")

PRUNE_EVERY_SECONDS = 3600.0

DecisionListener = Listener  # (event, decision) -> None: each decision the engine applied


class SelfUrl:
    """How this server reaches itself (`http://host:port`), known once it listens: the CLI
    and the tests set `runtime.self_url`; the sandbox asks for it when it needs it."""

    def __init__(self) -> None:
        self.url: str | None = None

    def __call__(self) -> str:
        if self.url is None:
            raise RuntimeError("sandbox mode needs the server's own URL before start")
        return self.url


@dataclass
class Runtime:
    """Everything a running server holds; build_runtime() makes it, the lifespan runs it."""

    settings: Settings
    telnyx: TelnyxEnv
    forms: FormRegistry
    sinks: dict[str, ConfiguredSink]
    store: SessionStore
    engine: Engine
    metrics: Metrics
    public_key: str
    connect: Callable[[], CallControl]  # the command client, made at start
    sandbox: Sandbox | None = None  # sandbox mode: the fake Telnyx inside the server
    address: SelfUrl = field(default_factory=SelfUrl)
    clock: Clock = time.time
    delivery_listeners: list[DeliveryListener] = field(default_factory=list)
    # PostgreSQL: LISTENs for the sessions any instance's steps change (the live view)
    session_notices: Callable[[Callable[[str], None]], Coroutine[Any, Any, None]] | None = None
    workers: Workers | None = None  # between start() and stop()
    _background: list[asyncio.Task[Any]] = field(default_factory=list)

    @property
    def mode(self) -> str:
        return "live" if self.telnyx.live else "sandbox"

    @property
    def self_url(self) -> str | None:
        """How this server reaches itself; set it once the server listens."""
        return self.address.url

    @self_url.setter
    def self_url(self, url: str | None) -> None:
        self.address.url = url

    def subscribe(
        self,
        *,
        decisions: DecisionListener | None = None,
        deliveries: DeliveryListener | None = None,
    ) -> None:
        """Hear each decision the engine applies and each delivery attempt's outcome (the
        live hub does); one that raises is logged, and the others still hear."""
        if decisions is not None:
            self.engine.listeners.append(decisions)
        if deliveries is not None:
            self.delivery_listeners.append(deliveries)

    # -- lifespan -------------------------------------------------------------------

    async def start(self) -> None:
        await self.store.open()
        for configured in self.sinks.values():
            try:
                await configured.start()
            except Exception as exc:  # a sink that is down waits; the server goes on
                log.warning("sink_start_failed", sink=configured.name, error=str(exc)[:300])
        workers = self.workers = make_workers(
            self.store,
            self.connect(),
            self.engine.handle,
            {name: configured.sink for name, configured in self.sinks.items()},
            self.metrics,
            lease_seconds=self.settings.lease_seconds,
            clock=self.clock,
            on_delivery=self._on_delivery,
        )
        from collector.adapters.telephony.transport import tls_context

        await asyncio.to_thread(tls_context)  # not in the event loop on the first command
        self.engine.listeners.append(self._on_decision)
        restored, timers = await workers.start(self.store)
        self._background.append(asyncio.create_task(self._prune_loop(), name="prune"))
        log.info(
            "started",
            mode=self.mode,
            forms=sorted(self.forms),
            sinks=sorted(self.sinks),
            restored_commands=restored,
            timers=timers,
            instance=self.instance,
        )

    @property
    def instance(self) -> str | None:
        """This process's id in a shared store's claims (None: the store is its own)."""
        return self.store.instance if isinstance(self.store, ClaimStore) else None

    async def stop(self) -> None:
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        workers = self.workers
        if workers is not None:
            await workers.stop(self.store)
        if self.sandbox is not None:
            await self.sandbox.close()
        close = getattr(workers.control, "close", None) if workers is not None else None
        if close is not None:
            await close()
        for configured in self.sinks.values():
            try:
                await configured.close()
            except Exception:
                log.exception("sink_close_failed", sink=configured.name)
        await self.store.close()
        log.info("stopped")

    def _on_decision(self, event: E.Event, decision: Decision) -> None:
        session = decision.session
        workers = self.workers
        if workers is None:
            return
        if decision.commands:
            workers.outbox.enqueue(session.id, session.call.call_control_id, decision.commands)
        workers.timers.track(session)
        if decision.submission is not None:
            workers.delivery.kick()
            log.info(
                "session_finalized",
                call_control_id=session.call.call_control_id,
                form=session.form,
                status=decision.submission["status"],
                outcome=decision.submission["outcome"],
                submission_id=decision.submission["submission_id"],
                errors=[e["pointer"] for e in decision.submission["errors"]],
            )

    def _on_delivery(self, sink: str, outcome: str, row: DeliveryRow) -> None:
        self.metrics.count(self.metrics.deliveries, sink, outcome)
        for listener in self.delivery_listeners:
            try:
                listener(sink, outcome, row)
            except Exception:
                log.exception("delivery_listener_failed", sink=sink)

    async def _prune_loop(self) -> None:
        while True:
            try:
                removed = await self.store.prune(self.clock(), self.settings.retention_days)
                if removed:
                    log.info("pruned", sessions=removed)
            except Exception:
                log.exception("prune_failed")
            await asyncio.sleep(PRUNE_EVERY_SECONDS)


def _telnyx(api_key: str | None, base_url: str | None) -> CallControl:
    from collector.adapters.telephony.control import TelnyxControl, make_client

    return TelnyxControl(make_client(api_key, base_url))


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
    database: DatabaseUrl | None = None
    try:
        database = settings.database
    except ConfigurationError as exc:
        problems.extend(exc.problems)
    address = SelfUrl()
    sandbox: Sandbox | None = None
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

        sandbox = Sandbox(address, pace=settings.sandbox_pace_seconds)
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
    if problems or database is None:
        raise ConfigurationError(problems)

    metrics = Metrics()
    store = make_store(
        database,
        synchronous=settings.database_synchronous,
        pool_size=settings.database_pool_size,
        on_commit=metrics.observe_commit,
    )
    outbound = settings.outbound
    policy = Policy(
        hangup_grace_seconds=settings.hangup_grace_seconds,
        session_timeout_seconds=settings.session_timeout_seconds,
        default_voice=settings.default_voice,
        **(
            {
                "machine_detection_seconds": outbound.machine_detection_seconds,
                "voicemail_greeting_seconds": outbound.voicemail_greeting_seconds,
                "ring_grace_seconds": outbound.ring_grace_seconds,
            }
            if outbound is not None
            else {}
        ),
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
    metrics.memory_sources.append(engine.memory)  # /metrics: the session cache's bytes
    metrics.memory_limits["engine_sessions"] = SESSION_CACHE_BYTES

    notices = None
    if database.kind == "postgresql":
        from collector.adapters.store.postgres_notices import session_notices

        notices = session_notices(database)

    def connect() -> CallControl:
        if control is not None:
            return control
        if telnyx.live:
            return _telnyx(telnyx.api_key, telnyx.base_url)
        return _telnyx(None, f"{address()}/_sandbox/telnyx/v2")

    return Runtime(
        settings=settings,
        telnyx=telnyx,
        forms=forms,
        sinks=sinks,
        store=store,
        engine=engine,
        metrics=metrics,
        public_key=public_key,
        connect=connect,
        sandbox=sandbox,
        address=address,
        session_notices=notices,
    )


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
