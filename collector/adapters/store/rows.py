"""The records of collector.records, read from SQLite rows by column name."""

from __future__ import annotations

from typing import Any

import orjson

from collector.records import CommandRow, DeadEventRow, DeliveryRow


def command_row(r: Any) -> CommandRow:
    return CommandRow(
        id=r["id"],
        session_id=r["session_id"],
        call_control_id=r["call_control_id"],
        seq=r["seq"],
        action=r["action"],
        body=orjson.loads(r["body"]),
        command_id=r["command_id"],
        state=r["state"],
        attempts=r["attempts"],
        decided_at=r["decided_at"],
        last_error=r["last_error"],
    )


def delivery_row(r: Any) -> DeliveryRow:
    body = r["submission"]
    return DeliveryRow(
        id=r["id"],
        submission_id=r["submission_id"],
        sink=r["sink"],
        key=r["key"],
        replay=bool(r["replay"]),
        state=r["state"],
        attempts=r["attempts"],
        next_at=r["next_at"],
        created_at=r["created_at"],
        delivered_at=r["delivered_at"],
        last_error=r["last_error"],
        submission=orjson.loads(body) if body else None,
    )


def dead_event_row(r: Any) -> DeadEventRow:
    return DeadEventRow(
        id=r["id"],
        event_id=r["event_id"],
        call_control_id=r["call_control_id"],
        session_id=r["session_id"],
        event_type=r["event_type"],
        stage=r["stage"],
        error=r["error"],
        received_at=r["received_at"],
    )
