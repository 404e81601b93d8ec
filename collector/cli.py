"""The `collector` command: serve, forms check|show, simulate, call, outbox, sessions
cancel, events dead, db upgrade|status."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
import structlog

from collector.config import Settings, TelnyxEnv, load_settings
from collector.core.session.submission import Submission
from collector.errors import ConfigurationError
from collector.web import serving

log = structlog.get_logger("collector")


def _problems(exc: ConfigurationError) -> int:
    for line in exc.problems:
        print(line, file=sys.stderr)
    print(f"collector: refusing to start: {len(exc.problems)} problem(s)", file=sys.stderr)
    return 1


def cmd_serve(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from collector import logs
    from collector.runtime import build_runtime, mode_reason

    fmt = environ.get("COLLECTOR_LOG_FORMAT")
    logs.configure(fmt if fmt in ("json", "console") else None)
    log.info(
        "mode",
        mode="live" if TelnyxEnv.from_env(environ).live else "sandbox",
        reason=mode_reason(TelnyxEnv.from_env(environ)),
    )
    try:
        settings = load_settings(args.config, environ)
        if args.host:
            settings.host = args.host
        if args.port is not None:
            settings.port = args.port
        runtime = build_runtime(settings, environ)
        _check_database(settings)
    except ConfigurationError as exc:
        return _problems(exc)
    if settings.log_format and settings.log_format != fmt:
        logs.configure(settings.log_format)  # `log_format` from collector.toml
    try:
        sock = serving.bind(settings.host, settings.port)
    except OSError as exc:
        print(
            f"collector: cannot listen on {settings.host}:{settings.port}: {exc}", file=sys.stderr
        )
        return 1
    port = sock.getsockname()[1]
    runtime.self_url = serving.self_url(settings.host, port)
    log.info(
        "listening",
        url=runtime.self_url,
        webhook=f"{settings.public_url or runtime.self_url}/webhooks/telnyx",
    )
    serving.run(serving.serve(runtime, sock))
    return 0


def _check_database(settings: Settings) -> None:
    """Open the store once (migrating its schema) before serving: a database that cannot be
    opened is one ConfigurationError line naming database_url, never its password."""
    from collector.adapters.store.database import check

    problem = serving.run(check(settings.database))
    if problem is not None:
        raise ConfigurationError([f"{settings.source}: /database_url: {problem}"])


def cmd_forms_check(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from collector.core.forms import check_forms

    if args.dir is not None:
        directory = Path(args.dir)
    else:
        try:
            directory = load_settings(args.config, environ).forms_path
        except ConfigurationError as exc:
            return _problems(exc)
    forms, problems = check_forms(directory)
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"ok: {len(forms)} form(s): {', '.join(forms)}")
    return 0


def cmd_forms_show(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from collector.core.forms import FormsInvalid, load_forms
    from collector.core.session.decide import ai_gather_body

    try:
        settings = load_settings(args.config, environ)
        forms = load_forms(Path(args.dir) if args.dir else settings.forms_path)
    except ConfigurationError as exc:
        return _problems(exc)
    except FormsInvalid as exc:
        for p in exc.problems:
            print(p, file=sys.stderr)
        return 1
    form = forms.get(args.form)
    if form is None:
        print(f"collector: no form {args.form!r} (forms: {', '.join(forms)})", file=sys.stderr)
        return 1
    body: dict[str, Any] | str | None
    if args.given is None:
        body = ai_gather_body(form, form.parameters)
    else:
        body = _follow_up_body(form, args.given)
        if isinstance(body, str):
            print(f"collector: --given: {body}", file=sys.stderr)
            return 1
    print(json.dumps(body, indent=2, ensure_ascii=False))
    return 0


def _follow_up_body(form: Any, given_text: str) -> dict[str, Any] | str | None:
    """The gather_using_ai body that follows these answers (None: nothing more to ask),
    or what is wrong with the answers."""
    from collector.core.session.decide import ai_gather_body
    from collector.core.session.wording import reask_greeting

    try:
        given = json.loads(given_text)
    except ValueError as exc:
        return f"not JSON: {exc}"
    if not isinstance(given, dict):
        return "a JSON object of field -> value"
    problems = []
    for name, value in given.items():
        if name not in form.fields:
            problems.append(f"{name!r} is not a field of form {form.id!r}")
        elif form.validate_field(name, value):
            problems.append(f"{name}: {form.validate_field(name, value)[0]}")
    if problems:
        return "; ".join(problems)
    required = form.requirements(given)
    names = [n for n in form.fields if n in required and n not in given]
    if not names:
        print("collector: with these answers the form asks nothing more", file=sys.stderr)
        return None
    greeting = reask_greeting(form, names, {}, form.messages)
    return ai_gather_body(form, form.sub_parameters(names, given), greeting)


async def _simulate(
    settings: Settings, environ: Mapping[str, str], form_id: str, script: Any, timeout: float
) -> tuple[int, Submission | None, str]:
    from collector.adapters.store.database import check
    from collector.runtime import build_runtime

    runtime = build_runtime(settings, environ)
    assert runtime.sandbox is not None  # cmd_simulate drops TELNYX_API_KEY
    if form_id not in runtime.forms:
        return 1, None, f"no form {form_id!r} (forms: {', '.join(runtime.forms)})"
    problem = await check(settings.database)
    if problem is not None:
        return 1, None, f"{settings.source}: /database_url: {problem}"
    sock = serving.bind("127.0.0.1", 0)
    runtime.self_url = serving.self_url("127.0.0.1", sock.getsockname()[1])
    ready = asyncio.Event()
    server, task = await serving.serve(runtime, sock, ready)
    try:
        try:
            ccid = await runtime.sandbox.place_call(form_id, script, runtime.forms[form_id].fields)
        except ValueError as exc:  # ScriptError
            return 1, None, str(exc)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            session = await runtime.store.session_by_call(ccid)
            if session is not None and session.submission_id:
                rows = await runtime.store.deliveries_for(session.submission_id)
                if rows and all(r.state != "pending" for r in rows):
                    submission = await runtime.store.submission(session.submission_id)
                    dead = [r for r in rows if r.state == "dead"]
                    if dead:
                        return (
                            1,
                            submission,
                            "; ".join(f"sink {r.sink}: {r.last_error}" for r in dead),
                        )
                    code = 0 if submission and submission["status"] == "completed" else 2
                    return code, submission, ""
                if not rows:
                    submission = await runtime.store.submission(session.submission_id)
                    return (
                        1,
                        submission,
                        "the submission went to no sink (check the form's sinks and statuses)",
                    )
            elif session is not None and session.terminal and not session.submission_id:
                return 1, None, f"the call ended as {session.state.value} without a submission"
            await asyncio.sleep(0.05)
        return 1, None, f"no submission within {timeout:.0f} s"
    finally:
        server.should_exit = True
        await task


def cmd_simulate(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from collector import logs

    logs.configure(level=40)  # errors only: stdout is the submission
    env = {k: v for k, v in environ.items() if k not in ("TELNYX_API_KEY",)}
    script: Any = None
    if args.answers:
        try:
            script = json.loads(Path(args.answers).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            print(f"collector: cannot read answers {args.answers}: {exc}", file=sys.stderr)
            return 1
        if not isinstance(script, dict):
            print(f"collector: {args.answers}: answers must be a JSON object", file=sys.stderr)
            return 1
    try:
        settings = load_settings(args.config, env)
        settings.sandbox_pace_seconds = min(settings.sandbox_pace_seconds, 0.01)
        settings.hangup_grace_seconds = min(settings.hangup_grace_seconds, 2.0)
        code, submission, error = serving.run(
            _simulate(settings, env, args.form, script, args.timeout)
        )
    except ConfigurationError as exc:
        return _problems(exc)
    except ValueError as exc:
        print(f"collector: {exc}", file=sys.stderr)
        return 1
    if submission is not None:
        sys.stdout.write(orjson.dumps(submission, option=orjson.OPT_INDENT_2).decode() + "\n")
    if error:
        print(f"collector: {error}", file=sys.stderr)
    return code


def _with_store(settings: Settings, work: Any) -> int:
    """Run `work(store)` on the configured store; a store that cannot be opened is one
    line naming database_url (never its password) and exit 1."""
    from collector.adapters.store.database import make_store, problem

    try:
        db = settings.database
    except ConfigurationError as exc:
        return _problems(exc)

    async def run() -> int:
        store = make_store(db, pool_size=2)
        try:
            await store.open()
        except Exception as exc:
            print(f"{settings.source}: /database_url: {problem(db, exc)}", file=sys.stderr)
            return 1
        try:
            return int(await work(store))
        finally:
            await store.close()

    return asyncio.run(run())


def cmd_db(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """`db status`: the schema's version and this collector's; `db upgrade`: migrate."""
    from collector.adapters.store import database

    try:
        settings = load_settings(args.config, environ)
        db = settings.database
    except ConfigurationError as exc:
        return _problems(exc)
    try:
        if args.db_command == "status":
            found, known = asyncio.run(database.status(db))
            state = "up to date" if found == known else "pending: collector db upgrade"
            if found > known:
                state = "newer than this collector: upgrade collector"
            print(f"{db.shown}: schema version {found}, this collector's {known} ({state})")
            return 0 if found == known else 1
        before, after = asyncio.run(database.upgrade(db))
    except Exception as exc:
        print(f"{settings.source}: /database_url: {database.problem(db, exc)}", file=sys.stderr)
        return 1
    done = f"upgraded from {before} to {after}" if after != before else f"at {after}, up to date"
    print(f"{db.shown}: schema version {done}")
    return 0


def _when(ts: float | None) -> str:
    from collector.core.session.submission import iso

    return iso(ts) or "-"


def cmd_outbox(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """List pending and dead deliveries; retry; replay on purpose."""
    import uuid

    try:
        settings = load_settings(args.config, environ)
    except ConfigurationError as exc:
        return _problems(exc)
    action = args.outbox_command or "list"

    async def run(store: Any) -> int:
        now = time.time()
        if action == "list":
            rows = await store.list_deliveries()
            if not rows:
                print("no pending or dead deliveries")
            for r in rows:
                print(
                    f"{r.id}\t{r.state}\t{r.sink}\t{r.submission_id}\tattempts={r.attempts}"
                    f"\tsince={_when(r.created_at)}\tnext={_when(r.next_at)}"
                    f"\t{(r.last_error or '')[:120]}"
                )
            return 0
        if action == "retry":
            if args.all_dead == (args.id is not None):
                print("collector: give a delivery ID or --all-dead", file=sys.stderr)
                return 1
            n = await store.requeue(now, None if args.all_dead else args.id)
            if not n and not args.all_dead:
                print(
                    f"collector: no delivery {args.id} pending or dead (one already delivered"
                    " is sent again with `collector outbox replay SUBMISSION --sink SINK`)",
                    file=sys.stderr,
                )
                return 1
            print(f"requeued {n} deliver{'y' if n == 1 else 'ies'}")
            return 0
        # replay
        if args.sink not in {c.sink_name for c in settings.sink_configs()}:
            names = ", ".join(sorted(c.sink_name for c in settings.sink_configs()))
            print(f"collector: no sink named {args.sink!r} (sinks: {names})", file=sys.stderr)
            return 1
        new_id = await store.replay(args.submission, args.sink, str(uuid.uuid4()), now)
        if new_id is None:
            print(f"collector: no submission {args.submission!r}", file=sys.stderr)
            return 1
        print(f"replay queued as delivery {new_id} to sink {args.sink}")
        return 0

    return _with_store(settings, run)


def cmd_events_dead(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """List dead events (acknowledged, never applied), newest first, from the store."""
    try:
        settings = load_settings(args.config, environ)
    except ConfigurationError as exc:
        return _problems(exc)

    async def run(store: Any) -> int:
        rows = await store.list_dead_events(event_type=args.type, limit=args.limit)
        if not rows:
            print("no dead events")
        for r in rows:
            print(
                f"{r.id}\t{_when(r.received_at)}\t{r.event_type}\t{r.event_id}"
                f"\t{r.call_control_id}\t{r.stage}\t{r.error}"
            )
        return 0

    return _with_store(settings, run)


def _server(args: argparse.Namespace, environ: Mapping[str, str]) -> tuple[str, str] | int:
    """The running server's URL and admin token (from the options, else the config), or
    the exit code of a problem already printed."""
    try:
        settings = load_settings(args.config, environ)
    except ConfigurationError as exc:
        return _problems(exc)
    token = args.token or settings.admin_token
    if not token:
        print(
            "collector: set COLLECTOR_ADMIN_TOKEN (or --token) to the server's admin token",
            file=sys.stderr,
        )
        return 1
    url = args.url or serving.self_url(settings.host, settings.port)
    return url.rstrip("/"), token


def _api_error(r: Any) -> str:
    try:
        message = r.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = r.text[:300]
    return f"collector: {r.status_code}: {message}"


def cmd_sessions_cancel(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Cancel a live session through the running server's admin API."""
    import httpx

    server = _server(args, environ)
    if isinstance(server, int):
        return server
    url, token = server
    try:
        r = httpx.post(
            f"{url}/api/sessions/{args.id}/cancel",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
    except httpx.HTTPError as exc:
        print(f"collector: cannot reach the server at {url}: {exc}", file=sys.stderr)
        return 1
    if r.status_code >= 400:
        print(_api_error(r), file=sys.stderr)
        return 1
    print(f"cancelled session {args.id}")
    return 0


def _call_body(args: argparse.Namespace) -> dict[str, Any] | str:
    """POST /api/calls's body from the options, or what is wrong with them."""
    body: dict[str, Any] = {"to": args.to, "form": args.form}
    variables = {}
    for item in args.var or ():
        name, sep, value = item.partition("=")
        if not sep or not name:
            return f"--var {item!r}: expected NAME=VALUE"
        variables[name] = value
    if variables:
        body["variables"] = variables
    for option, key in (("prefill", "prefill"), ("script", "script")):
        path = getattr(args, option)
        if path is None:
            continue
        try:
            value = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            return f"cannot read --{option} {path}: {exc}"
        if not isinstance(value, dict):
            return f"--{option} {path}: a JSON object"
        body[key] = value
    if args.resume:
        body["resume"] = args.resume
    return body


def cmd_call(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Dial a number into a form through the running server's admin API; with --wait,
    print the final submission (masked, as the API shows it) like `simulate`."""
    import httpx

    body = _call_body(args)
    if isinstance(body, str):
        print(f"collector: {body}", file=sys.stderr)
        return 1
    server = _server(args, environ)
    if isinstance(server, int):
        return server
    url, token = server
    headers = {"Authorization": f"Bearer {token}"}
    try:
        with httpx.Client(base_url=url, headers=headers, timeout=10) as client:
            r = client.post("/api/calls", json=body)
            if r.status_code >= 400:
                print(_api_error(r), file=sys.stderr)
                return 1
            session_id = r.json()["session_id"]
            if not args.wait:
                print(session_id)
                return 0
            print(f"dialling {args.to}: session {session_id}", file=sys.stderr)
            return _wait_for_call(client, session_id, args.timeout)
    except httpx.HTTPError as exc:
        print(f"collector: cannot reach the server at {url}: {exc}", file=sys.stderr)
        return 1


def _wait_for_call(client: Any, session_id: str, timeout: float) -> int:
    """Poll the session until it ends and its deliveries settle; print its submission."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = client.get(f"/api/sessions/{session_id}")
        if r.status_code >= 400:
            print(_api_error(r), file=sys.stderr)
            return 1
        view = r.json()
        submission = view.get("submission")
        deliveries = view.get("deliveries") or []
        settled = all(d["state"] != "pending" for d in deliveries)
        if view["terminal"] and submission is None:
            print(
                f"collector: the call ended as {view['state']} without a submission",
                file=sys.stderr,
            )
            return 1
        if submission is not None and deliveries and settled:
            sys.stdout.write(orjson.dumps(submission, option=orjson.OPT_INDENT_2).decode() + "\n")
            print(f"collector: outcome {submission.get('outcome')}", file=sys.stderr)
            dead = [d for d in deliveries if d["state"] == "dead"]
            if dead:
                problems = "; ".join(f"sink {d['sink']}: {d['last_error']}" for d in dead)
                print(f"collector: {problems}", file=sys.stderr)
                return 1
            return 0 if submission["status"] == "completed" else 2
        if submission is not None and not deliveries:
            sys.stdout.write(orjson.dumps(submission, option=orjson.OPT_INDENT_2).decode() + "\n")
            print(
                "collector: the submission went to no sink (check the form's sinks and statuses)",
                file=sys.stderr,
            )
            return 1
        time.sleep(0.2)
    print(f"collector: no final submission within {timeout:.0f} s", file=sys.stderr)
    return 1


CONFIG_HELP = "collector.toml (default: ./collector.toml)"
URL_HELP = "the server's base URL (default: http://HOST:PORT where serve listens, same config/env)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="collector", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the server")
    serve.add_argument(
        "--host",
        default=None,
        help="address to listen on (default: $COLLECTOR_HOST, host in config, 127.0.0.1)",
    )
    serve.add_argument(
        "--port",
        type=int,
        default=None,
        help="TCP port to listen on (default: $COLLECTOR_PORT, port in config, $PORT, 8000)",
    )
    serve.add_argument("--config", default=None, help=CONFIG_HELP)
    serve.set_defaults(run=cmd_serve)

    forms = sub.add_parser("forms", help="check or show forms")
    forms_sub = forms.add_subparsers(dest="forms_command", required=True)
    check = forms_sub.add_parser("check", help="lint every form")
    check.add_argument(
        "dir", nargs="?", default=None, help="the forms folder (default: forms_dir from config)"
    )
    check.add_argument("--config", default=None, help=CONFIG_HELP)
    check.set_defaults(run=cmd_forms_check)
    show = forms_sub.add_parser("show", help="print the first gather_using_ai body")
    show.add_argument("form", help="the form's id")
    show.add_argument(
        "--given",
        default=None,
        metavar="JSON",
        help="answers so far (field -> value): print the follow-up gather they lead to",
    )
    show.add_argument(
        "--dir", default=None, help="the forms folder (default: forms_dir from config)"
    )
    show.add_argument("--config", default=None, help=CONFIG_HELP)
    show.set_defaults(run=cmd_forms_show)

    sessions = sub.add_parser("sessions", help="act on sessions of a running server")
    sessions_sub = sessions.add_subparsers(dest="sessions_command", required=True)
    cancel = sessions_sub.add_parser(
        "cancel", help="cancel a live session: goodbye, hangup, abandoned"
    )
    cancel.add_argument("id", help="the session's id")
    cancel.add_argument("--url", default=None, help=URL_HELP)
    cancel.add_argument(
        "--token", default=None, help="admin token (default: COLLECTOR_ADMIN_TOKEN)"
    )
    cancel.add_argument("--config", default=None, help=CONFIG_HELP)
    cancel.set_defaults(run=cmd_sessions_cancel)

    call = sub.add_parser(
        "call", help="dial a number into a form (through the running server's admin API)"
    )
    call.add_argument("to", help="the number to dial, E.164: +13125550190")
    call.add_argument("--form", required=True, help="the form the call fills")
    call.add_argument(
        "--var", action="append", metavar="NAME=VALUE", help="a {NAME} placeholder's value"
    )
    call.add_argument("--prefill", metavar="FILE", help="JSON file: field -> value, not asked")
    call.add_argument("--resume", metavar="SESSION", help="continue this earlier session")
    call.add_argument(
        "--script", metavar="FILE", help="sandbox mode: the simulated callee's script (JSON)"
    )
    call.add_argument(
        "--wait", action="store_true", help="print the final submission (exit 0/2 like simulate)"
    )
    call.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        help="with --wait: give up after this many seconds (default: 300)",
    )
    call.add_argument("--url", default=None, help=URL_HELP)
    call.add_argument("--token", default=None, help="admin token (default: COLLECTOR_ADMIN_TOKEN)")
    call.add_argument("--config", default=None, help=CONFIG_HELP)
    call.set_defaults(run=cmd_call)

    outbox = sub.add_parser("outbox", help="list, retry or replay sink deliveries")
    outbox.add_argument("--config", default=None, help=CONFIG_HELP)
    outbox.set_defaults(run=cmd_outbox, outbox_command=None)
    outbox_sub = outbox.add_subparsers(dest="outbox_command")
    outbox_sub.add_parser("list", help="pending and dead deliveries (the default)")
    retry = outbox_sub.add_parser("retry", help="requeue a dead delivery, or all of them")
    retry.add_argument("id", nargs="?", type=int, default=None, help="the delivery's id")
    retry.add_argument("--all-dead", action="store_true", help="requeue every dead delivery")
    replay = outbox_sub.add_parser("replay", help="deliver a submission again, as a new delivery")
    replay.add_argument("submission", help="the submission's id")
    replay.add_argument("--sink", required=True, help="the sink's name, as in collector.toml")
    for p in (retry, replay):
        p.add_argument("--config", default=argparse.SUPPRESS, help=CONFIG_HELP)

    events = sub.add_parser("events", help="events the server could not apply")
    events_sub = events.add_subparsers(dest="events_command", required=True)
    dead = events_sub.add_parser(
        "dead", help="dead events: acknowledged, never applied (newest first)"
    )
    dead.add_argument("--type", default=None, help="only this event type")
    dead.add_argument(
        "--limit", type=int, default=100, help="at most this many events (default: 100)"
    )
    dead.add_argument("--config", default=None, help=CONFIG_HELP)
    dead.set_defaults(run=cmd_events_dead)

    db = sub.add_parser("db", help="the store's schema: its version, or apply migrations")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("status", help="the schema version and this collector's (exit 1: differ)")
    db_sub.add_parser("upgrade", help="apply pending migrations (serve does it at start-up)")
    for p in (db, *db_sub.choices.values()):
        p.add_argument(
            "--config", default=argparse.SUPPRESS if p is not db else None, help=CONFIG_HELP
        )
    db.set_defaults(run=cmd_db)

    simulate = sub.add_parser("simulate", help="run one whole call against the simulator")
    simulate.add_argument("form", help="the form's id")
    simulate.add_argument("--answers", default=None, help="JSON file: field -> value, or a script")
    simulate.add_argument("--config", default=None, help=CONFIG_HELP)
    simulate.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        help="give up if the call has not ended after this many seconds (default: 60)",
    )
    simulate.set_defaults(run=cmd_simulate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.run(args, os.environ))


if __name__ == "__main__":
    raise SystemExit(main())
