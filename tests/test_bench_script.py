"""The benchmark's call script for a form of the user's (`python -m bench --form`), and
its reading of the collector's commit metrics."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import orjson
import pytest

from bench import checks, events, script

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"


@pytest.fixture(autouse=True)
def _restore_script(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(script, "_SCRIPT", script.current_script())


def form(tmp_path: Path, name: str, **extra: Any) -> Path:
    doc = {
        "type": "object",
        "properties": {"name": {"type": "string", "examples": ["Jo"]}},
        "required": ["name"],
        **extra,
    }
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(doc))
    return path


def test_a_form_is_filled_with_its_example_answers_in_every_webhook() -> None:
    chosen = script.use_form(SCHEMAS / "claim.json")
    assert script.current_script() is chosen
    fields = list(json.loads((SCHEMAS / "claim.json").read_text())["properties"])
    assert chosen.form == "claim" and list(chosen.questions) == fields
    # the server gets the form and the file its $refs reach, nothing else from schemas/
    copied = sorted(str(p.relative_to(chosen.forms_dir)) for p in chosen.forms_dir.rglob("*.*"))
    assert copied == ["claim.json", "defs/common.json"]
    flow = events.call_flow(7, 1_700_000_000.0)
    assert len(flow) == chosen.events_per_call == 5 + 2 * len(fields)
    ended = next(ev for ev in flow if ev.type == "call.ai_gather.ended")
    payload = orjson.loads(ended.body)["data"]["payload"]
    assert payload["result"] == chosen.answers(7) == chosen.fixed
    assert {ev.ccid for ev in flow} == {flow[0].ccid}


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("confirm", True),
        ("after", {"assistant": {"id": "assistant-1234"}}),
        ("sinks", ["crm"]),
    ],
)
def test_a_form_that_changes_the_flow_or_the_sinks_is_refused(
    tmp_path: Path, key: str, value: Any
) -> None:
    path = form(tmp_path, "odd", **{"x-collector": {key: value}})
    with pytest.raises(SystemExit, match=f"/x-collector/{key}: "):
        script.use_form(path)
    assert script.current_script().form == script.FORM  # unchanged


def test_a_field_without_a_valid_example_is_named(tmp_path: Path) -> None:
    path = form(
        tmp_path,
        "odd",
        properties={
            "code": {"type": "string", "pattern": "^[A-Z]{3}$", "examples": ["abc"]},
            "note": {"type": "string"},
        },
        required=["code", "note"],
    )
    with pytest.raises(SystemExit) as caught:
        script.use_form(path)
    message = str(caught.value)
    assert f"{path}: /properties/code: its example answer 'abc' is invalid" in message
    assert f"{path}: /properties/note: no example, default or choice" in message


def test_other_forms_in_the_folder_do_not_matter(tmp_path: Path) -> None:
    form(tmp_path, "other", **{"x-collector": {"sinks": ["crm"]}})
    (tmp_path / "broken.json").write_text('{"type": "object", "properties": {"a": {"type": 5}}}')
    chosen = script.use_form(form(tmp_path, "good"))
    assert chosen.form == "good" and chosen.fixed == {"name": "Jo"}
    assert [p.name for p in chosen.forms_dir.iterdir()] == ["good.json"]


def test_a_broken_form_stops_with_its_problems(tmp_path: Path) -> None:
    path = form(tmp_path, "bad", properties={"a": {"type": 5}}, required=["a"])
    with pytest.raises(SystemExit, match=str(path)):
        script.use_form(path)


def test_commit_stats_count_commits_jobs_and_slow_ones() -> None:
    before = {"commits": 10.0, "jobs": 50.0, "le 0.01": 10.0, "le 0.05": 10.0, "le 0.5": 10.0}
    before["le +Inf"] = 10.0
    after = {"commits": 110.0, "jobs": 750.0, "le 0.01": 90.0, "le 0.05": 107.0, "le 0.5": 110.0}
    after["le +Inf"] = 110.0
    stats = checks.commit_stats(before, after)
    assert stats == {
        "commits": 100,
        "jobs_per_commit": 7.0,
        "over_50ms": 3,
        "slowest_bucket_ms": 500.0,
    }
    beyond = checks.commit_stats(before, {**after, "le 0.5": 109.0})
    assert beyond["slowest_bucket_ms"] == math.inf
    assert checks.commit_stats(before, before)["jobs_per_commit"] is None


@pytest.mark.parametrize("stagger", [True, False])
def test_interleave_keeps_each_call_in_order_and_staggers_their_stages(stagger: bool) -> None:
    flows = [[events.Event(c, f"v3:{c}", f"step{k}", b"") for k in range(15)] for c in range(200)]
    out = events.interleave(flows, window=64, stagger=stagger)
    assert sorted((ev.call, ev.type) for ev in out) == sorted(
        (ev.call, ev.type) for flow in flows for ev in flow
    )
    seen: dict[int, int] = {}
    for ev in out:
        step = int(ev.type.removeprefix("step"))
        assert seen.get(ev.call, -1) == step - 1  # a call's events stay in order
        seen[ev.call] = step
    stages = {ev.type for ev in out[1000:1064]}  # one round, mid-run
    assert len(stages) == (15 if stagger else 2)
