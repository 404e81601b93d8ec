"""Realistic inbound call flows as Telnyx webhooks, and their signed HTTP requests.

One call is 5 + 2 per field webhooks (15 for bench_contact), in the order Telnyx sends them:
call.initiated, call.answered, a call.ai_gather.partial_results and a
call.ai_gather.message_history_updated per field, call.ai_gather.ended, call.speak.ended,
call.hangup; what the caller says comes from bench/script.py. Payload shapes follow
tests/fixtures/telnyx; every event has its own `data.id`; `client_state` is omitted (the
server finds the session by `call_control_id`).

Calls are spread over lanes (one lane = one wrk thread = one connection, or one sender
lane): inside a lane, a sliding window of calls advances round-robin, so many calls are in
flight while each call's own events stay in order.
"""

from __future__ import annotations

import base64
import secrets
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
from nacl.signing import SigningKey

from bench.script import current_script

TO_NUMBER = "+13125550100"
# the webhook whose handling makes the server send each command
TRIGGERS = {
    "answer": "call.initiated",
    "gather_using_ai": "call.answered",
    "speak": "call.ai_gather.ended",
    "hangup": "call.speak.ended",
}


@dataclass(frozen=True, slots=True)
class Event:
    call: int  # index of the call in the run
    ccid: str
    type: str
    body: bytes

    @property
    def last(self) -> bool:
        return self.type == "call.hangup"


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1e6):06d}Z"


def _history(answers: dict[str, object], upto: int) -> list[dict[str, str]]:
    out = []
    questions = current_script().questions
    for name in list(questions)[:upto]:
        out.append({"role": "assistant", "content": questions[name]})
        out.append({"role": "user", "content": f"It's {answers[name]}."})
    return out


def call_flow(i: int, start: float) -> list[Event]:
    """The webhooks of one inbound call, in order."""
    ccid = "v3:" + secrets.token_urlsafe(40)
    call = {
        "call_control_id": ccid,
        "call_leg_id": str(uuid.uuid4()),
        "call_session_id": str(uuid.uuid4()),
        "connection_id": "2287104733592061441",
        "from": f"+1312555{i % 10000:04d}",
        "to": TO_NUMBER,
    }
    script = current_script()
    answers = script.answers(i)
    names = list(script.questions)
    payloads: list[tuple[str, dict[str, object]]] = [
        (
            "call.initiated",
            {
                **call,
                "caller_id_name": f"RIVERA CALLER {i}",
                "client_state": None,
                "connection_codecs": "G722,PCMU,PCMA,G729,OPUS,VP8,H264",
                "direction": "incoming",
                "offered_codecs": "PCMU,PCMA,G722,telephone-event",
                "shaken_stir_attestation": "A",
                "shaken_stir_validated": True,
                "start_time": _iso(start),
                "state": "parked",
            },
        ),
        ("call.answered", {**call, "start_time": _iso(start), "state": "answered"}),
    ]
    for k in range(1, len(names) + 1):
        history = _history(answers, k)
        partial = {n: answers[n] for n in names[:k]}
        payloads.append(
            (
                "call.ai_gather.partial_results",
                {**call, "message_history": history, "partial_results": partial},
            )
        )
        payloads.append(
            ("call.ai_gather.message_history_updated", {**call, "message_history": history})
        )
    payloads += [
        (
            "call.ai_gather.ended",
            {
                **call,
                "message_history": _history(answers, len(names)),
                "result": answers,
                "status": "valid",
            },
        ),
        (
            "call.speak.ended",
            {k: call[k] for k in call if k not in ("from", "to")} | {"status": "completed"},
        ),
        (
            "call.hangup",
            {
                **call,
                "call_quality_stats": {
                    "inbound": {
                        "jitter_max_variance": "0.32",
                        "mos": "4.47",
                        "packet_count": "5230",
                    },
                    "outbound": {"packet_count": "5187", "skip_packet_count": "0"},
                },
                "hangup_cause": "normal_clearing",
                "hangup_source": "callee",
                "sip_hangup_cause": "unspecified",
                "start_time": _iso(start),
                "state": "hangup",
            },
        ),
    ]
    events = []
    for n, (event_type, payload) in enumerate(payloads):
        doc = {
            "data": {
                "record_type": "event",
                "event_type": event_type,
                "id": str(uuid.uuid4()),
                "occurred_at": _iso(start + 2.0 * n),
                "payload": payload,
            },
            "meta": {"attempt": 1, "delivered_to": "https://collector.example.com/webhooks/telnyx"},
        }
        events.append(Event(i, ccid, event_type, orjson.dumps(doc)))
    return events


def interleave(flows: Iterable[list[Event]], window: int, stagger: bool = True) -> list[Event]:
    """Advance `window` calls round-robin; a finished call makes room for the next.

    With `stagger`, the first `window` calls join one after another over one call's length
    (call j at round j * length / window), so the calls in flight are at different stages,
    as calls arriving at random are. Without it they start together and move in step: every
    call reaches `call.ai_gather.ended` in the same round, and stays in step with the calls
    that replace them.
    """
    pending: Iterator[list[Event]] = iter(flows)
    first = [flow for _, flow in zip(range(window), pending, strict=False)]
    if not first:
        return []
    span = len(first[0]) if stagger else 0
    joining = [(j * span // len(first), iter(flow)) for j, flow in enumerate(first)]
    active: list[Iterator[Event]] = []
    out: list[Event] = []
    round_ = 0
    while active or joining:
        while joining and joining[0][0] <= round_:
            active.append(joining.pop(0)[1])
        still = []
        for it in active:
            ev = next(it, None)
            if ev is None:
                flow = next(pending, None)
                if flow is None:
                    continue
                it = iter(flow)
                ev = next(it)
            still.append(it)
            out.append(ev)
        active = still
        round_ += 1
    return out


def make_calls(calls: int) -> list[list[Event]]:
    """The webhooks of `calls` calls, one list per call."""
    start = time.time()
    return [call_flow(i, start) for i in range(calls)]


def make_lanes(calls: int, lanes: int, window: int) -> list[list[Event]]:
    """`calls` calls dealt to `lanes` lanes, each lane interleaving `window` calls at a time."""
    flows = make_calls(calls)
    return [interleave(flows[k::lanes], window) for k in range(lanes)]


def sign_headers(body: bytes, key: SigningKey, ts: str) -> tuple[str, str]:
    signature = key.sign(ts.encode() + b"|" + body).signature
    return base64.b64encode(signature).decode(), ts


def raw_request(body: bytes, key: SigningKey, host: str, ts: str) -> bytes:
    """The exact HTTP/1.1 request Telnyx would send, signed at `ts`."""
    sig, ts = sign_headers(body, key, ts)
    head = (
        "POST /webhooks/telnyx HTTP/1.1\r\n"
        f"Host: {host}\r\n"
        "User-Agent: telnyx-webhooks\r\n"
        "Content-Type: application/json\r\n"
        f"telnyx-signature-ed25519: {sig}\r\n"
        f"telnyx-timestamp: {ts}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def write_lane_files(lanes: list[list[Event]], key: SigningKey, host: str, folder: Path) -> None:
    """Sign every request now and write one file per lane for wrk: `<len>\\n<raw>` records."""
    folder.mkdir(parents=True, exist_ok=True)
    ts = str(int(time.time()))
    for n, lane in enumerate(lanes):
        chunks = []
        for ev in lane:
            raw = raw_request(ev.body, key, host, ts)
            chunks.append(b"%d\n" % len(raw))
            chunks.append(raw)
        (folder / f"lane-{n}.req").write_bytes(b"".join(chunks))
