"""The OpenAPI 3.1 document of the admin API, written by hand and checked by schemathesis."""

from __future__ import annotations

from typing import Any

from collector import __version__ as VERSION
from collector.core.session.events import AMD_RESULTS
from collector.core.session.model import OUTCOMES, STATUSES
from collector.web.presentation import STATES

_TS = {"type": ["string", "null"], "format": "date-time"}
_TS_REQ = {"type": "string", "format": "date-time"}
_STR_OR_NULL = {"type": ["string", "null"]}
_E164 = "^\\+[1-9][0-9]{1,14}$"
_STATUS = {
    "type": ["string", "null"],
    "enum": [*STATUSES, None],
    "description": "the submission's status once finalized",
}
_OUTCOME = {
    "type": ["string", "null"],
    "enum": [*OUTCOMES, None],
    "description": (
        "the status, or for an outbound call that never reached the form: voicemail,"
        " no_answer, busy, rejected, failed (the dial refused)"
    ),
}
_AMD = {
    "type": ["string", "null"],
    "enum": [*sorted(set(AMD_RESULTS.values())), None],
    "description": "who answered an outbound call, as machine detection said (null: none)",
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


_UNAUTHORIZED = {"$ref": "#/components/responses/Unauthorized"}
_NOT_FOUND = {"$ref": "#/components/responses/NotFound"}
_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
}

_SINCE = {
    "name": "since",
    "in": "query",
    "required": False,
    "description": "at or after: ISO 8601, or seconds since the epoch",
    "schema": {
        "anyOf": [
            {"type": "string", "format": "date-time"},
            {"type": "string", "pattern": "^[0-9]{1,12}(\\.[0-9]{1,9})?$"},
        ]
    },
}
_LIMIT = {
    "name": "limit",
    "in": "query",
    "required": False,
    "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
}
_CURSOR = {
    "name": "cursor",
    "in": "query",
    "required": False,
    "description": "the `next_cursor` of the previous page (opaque)",
    "schema": {"type": "string"},
}

_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            }
        },
    },
    "Call": {
        "type": "object",
        "required": ["call_control_id", "from", "to", "direction"],
        "properties": {
            "call_control_id": {"type": "string"},
            "from": {"type": "string"},
            "to": {"type": "string"},
            "direction": {
                "type": "string",
                "description": "as Telnyx says it: incoming / outgoing",
            },
            "call_session_id": _STR_OR_NULL,
            "call_leg_id": _STR_OR_NULL,
            "alive": {"type": "boolean"},
            "hangup_cause": _STR_OR_NULL,
            "machine_detection": {
                "type": ["string", "null"],
                "description": "an outbound call's answering_machine_detection mode",
            },
        },
    },
    "SessionSummary": {
        "type": "object",
        "required": [
            "id",
            "form",
            "state",
            "call",
            "started_at",
            "updated_at",
            "fields_filled",
            "fields_total",
        ],
        "properties": {
            "id": {"type": "string"},
            "form": _STR_OR_NULL,
            "form_version": _STR_OR_NULL,
            "state": {"type": "string", "enum": list(STATES)},
            "terminal": {"type": "boolean"},
            "status": _STATUS,
            "outcome": _OUTCOME,
            "amd": _AMD,
            "call": _ref("Call"),
            "started_at": _TS_REQ,
            "updated_at": _TS_REQ,
            "ended_at": _TS,
            "attempts": {"type": "integer", "description": "AI gathers issued"},
            "fields_filled": {"type": "integer", "minimum": 0},
            "fields_total": {"type": "integer", "minimum": 0},
        },
    },
    "SessionList": {
        "type": "object",
        "required": ["sessions", "next_cursor"],
        "properties": {
            "sessions": {"type": "array", "items": _ref("SessionSummary")},
            "next_cursor": {
                "type": ["string", "null"],
                "description": "pass as `cursor` for the next (older) page; null on the last",
            },
        },
    },
    "DeadEvent": {
        "type": "object",
        "description": (
            "An event acknowledged but never applied: it failed for a reason a redelivery"
            " cannot change. The body is not kept (it may hold sensitive values); the error"
            " names the exception and where it was raised, with quoted text and long numbers cut"
        ),
        "required": [
            "id",
            "event_id",
            "event_type",
            "call_control_id",
            "session_id",
            "stage",
            "error",
            "received_at",
        ],
        "properties": {
            "id": {"type": "integer"},
            "event_id": {"type": "string", "description": "Telnyx's `data.id` (or ours: `~…`)"},
            "event_type": {"type": "string"},
            "call_control_id": {"type": "string"},
            "session_id": _STR_OR_NULL,
            "stage": {
                "type": "string",
                "enum": ["load", "decide", "serialise", "store"],
                "description": "where it failed",
            },
            "error": {"type": "string"},
            "received_at": _TS_REQ,
        },
    },
    "DeadEventList": {
        "type": "object",
        "required": ["dead_events", "next_cursor"],
        "properties": {
            "dead_events": {"type": "array", "items": _ref("DeadEvent")},
            "next_cursor": {
                "type": ["string", "null"],
                "description": "pass as `cursor` for the next (older) page; null on the last",
            },
        },
    },
    "Field": {
        "type": "object",
        "required": ["title", "required", "sensitive", "valid", "attempts", "errors", "status"],
        "properties": {
            "title": {"type": "string"},
            "required": {
                "type": "boolean",
                "description": "the form (its rules included) requires it now, given the answers",
            },
            "conditional": {
                "type": "boolean",
                "description": "only a rule of the form requires it (asked in a follow-up gather)",
            },
            "sensitive": {"type": "boolean", "description": "values show as •••"},
            "max_attempts": {"type": ["integer", "null"]},
            "asking": {"type": "boolean", "description": "the running gather asks for it"},
            "value": {"description": "the last value heard (masked when sensitive)"},
            "partial": {"description": "the running gather's partial result (masked)"},
            "valid": {"type": "boolean"},
            "source": {
                "type": ["string", "null"],
                "enum": ["ai", "keypad", "confirmed", "prefill", None],
            },
            "attempts": {"type": "integer"},
            "problems": {"type": "array", "items": {"type": "string"}},
            "errors": {"type": "array", "items": {"type": "string"}},
            "status": {
                "type": "string",
                "enum": ["valid", "hearing", "invalid", "asking", "waiting", "missing", "skipped"],
            },
        },
    },
    "TranscriptLine": {
        "type": "object",
        "required": ["role", "content"],
        "properties": {
            "role": {"type": "string"},
            "content": {"type": "string"},
            "attempt": {"type": "integer"},
        },
    },
    "Delivery": {
        "type": "object",
        "required": ["sink", "state", "attempts", "last_error", "delivered_at"],
        "properties": {
            "sink": {"type": "string"},
            "state": {"type": "string", "enum": ["pending", "delivered", "dead"]},
            "attempts": {"type": "integer"},
            "last_error": _STR_OR_NULL,
            "delivered_at": _TS,
            "next_attempt_at": _TS,
            "replay": {"type": "boolean"},
        },
    },
    "Submission": {
        "type": "object",
        "description": "What the sinks received, with sensitive values masked",
        "required": ["submission_id", "form", "form_version", "status", "data", "errors", "fields"],
        "properties": {
            "submission_id": {"type": "string"},
            "form": {"type": "string"},
            "form_version": {"type": "string"},
            "status": {"type": "string", "enum": list(STATUSES)},
            "outcome": {**_OUTCOME, "type": "string", "enum": list(OUTCOMES)},
            "amd": _AMD,
            "resumed_from": {
                "type": "string",
                "description": "the earlier session this call resumed (its fields say which"
                " they carried, in `resumed_from`)",
            },
            "data": {"type": "object"},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"pointer": {"type": "string"}, "message": {"type": "string"}},
                },
            },
            "fields": {"type": "object"},
            "call": {"type": "object"},
            "attempts": {"type": "integer"},
            "started_at": _TS,
            "ended_at": _TS,
            "transcript": {"type": "array", "items": _ref("TranscriptLine")},
        },
    },
    "SessionDetail": {
        "allOf": [
            _ref("SessionSummary"),
            {
                "type": "object",
                "required": [
                    "gather",
                    "partial",
                    "fields",
                    "errors",
                    "transcript",
                    "notes",
                    "conversation",
                    "submission",
                    "deliveries",
                ],
                "properties": {
                    "form_title": _STR_OR_NULL,
                    "resumed_from": {
                        "type": ["string", "null"],
                        "description": "the earlier session this call resumes",
                    },
                    "gather": {
                        "type": ["object", "null"],
                        "properties": {
                            "kind": {"type": "string"},
                            "attempt": {"type": "integer"},
                            "fields": {"type": "array", "items": {"type": "string"}},
                        },
                    },
                    "partial": {"type": "object", "description": "masked partial results"},
                    "fields": {"type": "object", "additionalProperties": _ref("Field")},
                    "errors": {"type": "array", "items": {"type": "object"}},
                    "transcript": {"type": "array", "items": _ref("TranscriptLine")},
                    "notes": {"type": "array", "items": {"type": "object"}},
                    "conversation": {"type": "array", "items": {"type": "object"}},
                    "deadline": {"type": ["object", "null"]},
                    "submission": {"oneOf": [_ref("Submission"), {"type": "null"}]},
                    "deliveries": {"type": "array", "items": _ref("Delivery")},
                    "commands": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "seq": {"type": "integer"},
                                "action": {"type": "string"},
                                "state": {"type": "string"},
                                "attempts": {"type": "integer"},
                                "decided_at": _TS,
                                "last_error": _STR_OR_NULL,
                            },
                        },
                    },
                },
            },
        ]
    },
    "FormSummary": {
        "type": "object",
        "required": ["id", "title", "version", "fields", "required"],
        "properties": {
            "id": {"type": "string"},
            "title": {"type": "string"},
            "description": _STR_OR_NULL,
            "version": {"type": "string", "description": "12 hex digits of the resolved form"},
            "fields": {"type": "array", "items": {"type": "string"}},
            "required": {"type": "array", "items": {"type": "string"}},
            "sensitive_fields": {"type": "array", "items": {"type": "string"}},
        },
    },
    "FormDetail": {
        "allOf": [
            _ref("FormSummary"),
            {
                "type": "object",
                "required": ["parameters"],
                "properties": {
                    "parameters": {
                        "type": "object",
                        "description": "the exact `parameters` of the first gather_using_ai",
                    },
                    "gather_options": {"type": "object"},
                    "max_attempts": {"type": "integer"},
                    "confirm": {"type": "boolean"},
                    "sinks": {"type": ["array", "null"], "items": {"type": "string"}},
                    "field_options": {"type": "object"},
                },
            },
        ]
    },
    "SimulateRequest": {
        "type": "object",
        "required": ["form"],
        "additionalProperties": False,
        "properties": {
            "form": {"type": "string", "minLength": 1, "description": "a form id"},
            "answers": {
                "type": "object",
                "description": "field -> value, or a rich caller script (see `collector"
                " simulate --answers`)",
            },
        },
    },
    "SimulateResponse": {
        "type": "object",
        "required": ["call_control_id", "session_id"],
        "properties": {
            "call_control_id": {"type": "string"},
            "session_id": {
                "type": ["string", "null"],
                "description": "null if the session did not appear within 5 s",
            },
            "form": {"type": "string"},
            "dashboard_url": _STR_OR_NULL,
        },
    },
    "CallRequest": {
        "type": "object",
        "required": ["to", "form"],
        "additionalProperties": False,
        "properties": {
            "to": {"type": "string", "pattern": _E164, "description": "E.164, like +13125550190"},
            "form": {"type": "string", "minLength": 1, "description": "a form id"},
            "variables": {
                "type": "object",
                "additionalProperties": {"type": ["string", "number", "null"]},
                "description": "values of the form's `{name}` placeholders (text or numbers)",
            },
            "prefill": {
                "type": "object",
                "description": "field -> value known in advance: checked, never asked",
            },
            "resume": {
                "type": "string",
                "minLength": 1,
                "description": "an earlier session of the same form and number that did not"
                " complete: only its missing fields are asked",
            },
            "script": {
                "type": "object",
                "description": "sandbox mode only: the simulated callee's script (as `collector"
                " simulate --answers`, with `callee`: person, voicemail, no_answer, busy,"
                " rejected)",
            },
        },
    },
    "CallResponse": {
        "type": "object",
        "required": ["session_id", "status"],
        "properties": {
            "session_id": {"type": "string"},
            "status": {"type": "string", "enum": ["dialing"]},
            "form": {"type": "string"},
            "to": {"type": "string"},
            "resumed_from": _STR_OR_NULL,
            "dashboard_url": {"type": "string"},
        },
    },
    "CancelRequest": {
        "type": "object",
        "additionalProperties": False,
        "properties": {"reason": {"type": "string", "maxLength": 200}},
    },
}

_EVENT_STREAM = {
    "description": (
        "Server-sent events. Each event has an integer `id:` (send it back as"
        " `Last-Event-ID` to get what was missed) and one JSON object in `data:` with at least"
        " `id`, `type` (session.updated, session.partial, session.transcript,"
        " session.finalized, delivery.updated), `session_id`, `form` and `state`."
        " Comments (`: ping`) are heartbeats."
    ),
    "content": {"text/event-stream": {"schema": {"type": "string"}}},
}

_LAST_EVENT_ID = [
    {
        "name": "Last-Event-ID",
        "in": "header",
        "required": False,
        "schema": {"type": "string"},
        "description": "resume after this event id",
    },
    {
        "name": "last_event_id",
        "in": "query",
        "required": False,
        "schema": {"type": "string"},
        "description": "the same, for clients that cannot set headers",
    },
]


def openapi_document(form_ids: list[str] | None = None) -> dict[str, Any]:
    """The document served at /openapi.json; `form_ids` give its examples real values.

    The document is the same in both modes: /api/simulate answers 409 when live.
    """
    example = (form_ids or ["intake"])[0]
    form_id = {**_ID, "examples": {"form": {"value": example}}}
    simulate_body = {
        "schema": _ref("SimulateRequest"),
        "examples": {"examples": {"value": {"form": example}}},
    }
    call_body = {
        "schema": _ref("CallRequest"),
        "examples": {"examples": {"value": {"to": "+13125550190", "form": example}}},
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "collector admin API",
            "version": VERSION,
            "description": (
                "Watch and steer phone-call form sessions. Authenticate with"
                " `Authorization: Bearer <COLLECTOR_ADMIN_TOKEN>` (or the dashboard's cookie)."
                ' Errors are `{"error": {"code", "message"}}`. Fields marked sensitive'
                " in a form are masked (•••) everywhere in this API."
            ),
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}, {"cookie": []}],
        "paths": {
            "/api/forms": {
                "get": {
                    "operationId": "listForms",
                    "summary": "The loaded forms",
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["forms"],
                                "properties": {
                                    "forms": {"type": "array", "items": _ref("FormSummary")}
                                },
                            },
                            "Every form",
                        ),
                        "401": _UNAUTHORIZED,
                    },
                }
            },
            "/api/forms/{id}": {
                "get": {
                    "operationId": "getForm",
                    "summary": "One form: version and the exact gather parameters",
                    "parameters": [form_id],
                    "responses": {
                        "200": _json(_ref("FormDetail"), "The form"),
                        "401": _UNAUTHORIZED,
                        "404": _NOT_FOUND,
                    },
                }
            },
            "/api/sessions": {
                "get": {
                    "operationId": "listSessions",
                    "summary": "Sessions, newest first, a page at a time",
                    "parameters": [
                        {
                            "name": "state",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "string", "enum": list(STATES)},
                        },
                        {
                            "name": "form",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "string"},
                        },
                        {
                            "name": "since",
                            "in": "query",
                            "required": False,
                            "description": (
                                "started at or after: ISO 8601, or seconds since the epoch"
                            ),
                            "schema": {
                                "anyOf": [
                                    {"type": "string", "format": "date-time"},
                                    {"type": "string", "pattern": "^[0-9]{1,12}(\\.[0-9]{1,9})?$"},
                                ]
                            },
                        },
                        {
                            "name": "limit",
                            "in": "query",
                            "required": False,
                            "schema": {
                                "type": "integer",
                                "minimum": 1,
                                "maximum": 200,
                                "default": 50,
                            },
                        },
                        {
                            "name": "cursor",
                            "in": "query",
                            "required": False,
                            "description": "the `next_cursor` of the previous page (opaque)",
                            "schema": {"type": "string"},
                        },
                    ],
                    "responses": {
                        "200": _json(_ref("SessionList"), "A page of sessions"),
                        "400": _error("A bad filter, limit or cursor"),
                        "401": _UNAUTHORIZED,
                    },
                }
            },
            "/api/sessions/{id}": {
                "get": {
                    "operationId": "getSession",
                    "summary": "Everything about one session (masked)",
                    "parameters": [_ID],
                    "responses": {
                        "200": _json(_ref("SessionDetail"), "The session"),
                        "401": _UNAUTHORIZED,
                        "404": _NOT_FOUND,
                    },
                }
            },
            "/api/sessions/{id}/cancel": {
                "post": {
                    "operationId": "cancelSession",
                    "summary": "Stop a live session: it finalizes as abandoned",
                    "parameters": [_ID],
                    "requestBody": {
                        "required": False,
                        "content": {"application/json": {"schema": _ref("CancelRequest")}},
                    },
                    "responses": {
                        "202": _json(_ref("SessionDetail"), "Cancelled; the session as it is now"),
                        "400": _error("The body is not JSON"),
                        "401": _UNAUTHORIZED,
                        "403": _error("A cookie-authenticated request from another origin"),
                        "404": _NOT_FOUND,
                        "409": _error("The session has already finished"),
                        "413": _error("The body is too large"),
                        "422": _error("The body is not a CancelRequest"),
                    },
                }
            },
            "/api/sessions/{id}/events": {
                "get": {
                    "operationId": "sessionEvents",
                    "summary": "Live events of one session",
                    "parameters": [_ID, *_LAST_EVENT_ID],
                    "responses": {
                        "200": _EVENT_STREAM,
                        "400": _error("Last-Event-ID is not a number"),
                        "401": _UNAUTHORIZED,
                        "404": _NOT_FOUND,
                        "503": _error("Too many streams are open"),
                    },
                }
            },
            "/api/events": {
                "get": {
                    "operationId": "events",
                    "summary": "Live events of every session",
                    "parameters": _LAST_EVENT_ID,
                    "responses": {
                        "200": _EVENT_STREAM,
                        "400": _error("Last-Event-ID is not a number"),
                        "401": _UNAUTHORIZED,
                        "503": _error("Too many streams are open"),
                    },
                }
            },
            "/api/events/dead": {
                "get": {
                    "operationId": "listDeadEvents",
                    "summary": "Dead events (acknowledged, never applied), newest first",
                    "parameters": [
                        {
                            "name": "type",
                            "in": "query",
                            "required": False,
                            "description": "an event type, e.g. call.ai_gather.ended",
                            "schema": {"type": "string"},
                        },
                        _SINCE,
                        _LIMIT,
                        _CURSOR,
                    ],
                    "responses": {
                        "200": _json(_ref("DeadEventList"), "A page of dead events"),
                        "400": _error("A bad filter, limit or cursor"),
                        "401": _UNAUTHORIZED,
                    },
                }
            },
            "/api/calls": {
                "post": {
                    "operationId": "placeCall",
                    "summary": "Dial a number into a form (an outbound call)",
                    "description": (
                        "Every check runs before anything is dialled; the call then goes"
                        " through the command outbox. Follow it at /api/sessions/{id}."
                    ),
                    "requestBody": {"required": True, "content": {"application/json": call_body}},
                    "responses": {
                        "202": _json(_ref("CallResponse"), "The call is being dialled"),
                        "400": _error("The body is not JSON"),
                        "401": _UNAUTHORIZED,
                        "403": _error("A cookie-authenticated request from another origin"),
                        "413": _error("The body is too large"),
                        "422": _error(
                            "Nothing dialled: the body, the number, the form, a variable,"
                            " a prefilled value or the resumed session cannot be used, or"
                            " outbound calls are not configured"
                        ),
                    },
                }
            },
            "/api/simulate": {
                "post": {
                    "operationId": "simulate",
                    "summary": "Place a simulated call (sandbox mode only)",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": simulate_body},
                    },
                    "responses": {
                        "202": _json(_ref("SimulateResponse"), "The call is ringing"),
                        "400": _error("The body is not JSON"),
                        "401": _UNAUTHORIZED,
                        "403": _error("A cookie-authenticated request from another origin"),
                        "404": _error("No such form"),
                        "409": _error("The server runs live, not in sandbox mode"),
                        "413": _error("The body is too large"),
                        "422": _error("The body or its answers cannot be used"),
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": "collector_session"},
            },
            "responses": {
                "Unauthorized": _error("No or wrong admin token"),
                "NotFound": _error("No such resource"),
            },
            "schemas": _SCHEMAS,
        },
    }
