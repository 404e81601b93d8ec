"""Claims of a store that several instances share (collector.ports.ClaimStore), run once
per store in conftest.SHARED with two store objects on one database, instances A and B:
disjoint claims, a lapsed lease taken over, a renewed one kept, a call's commands in
decided order, and what lets go of a claim."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from collector.core.session.commands import Command
from collector.core.session.model import DeadlineKind, State
from tests.store.test_contract import NOW, finished, session

pytestmark = pytest.mark.anyio

T = 5000.0  # the callers' clock: leases are compared with the `now` each call passes


def _cmds(*seqs: int) -> list[Command]:
    return [Command(action="speak", seq=n, body={"n": n}, decided_at=float(n)) for n in seqs]


async def test_two_instances_claiming_at_once_get_disjoint_work_and_all_of_it(
    pair: Any,
) -> None:
    """SKIP LOCKED: claims made at the same moment never share a command, a delivery or
    a deadline, and between them they claim everything due."""
    a, b = pair
    for n in range(12):
        await a.commit_step(
            session(n, deadline=T - 1, deadline_kind=DeadlineKind.GRACE), _cmds(1, 2)
        )
        await finished(a, 100 + n, ["x", "y"])
    (ca, _), (cb, _) = await asyncio.gather(*(s.claim_commands(T, T + 15, limit=7) for s in pair))
    assert not {c.id for c in ca} & {c.id for c in cb} and len(ca) + len(cb) == 24
    assert {c.instance for c in pair} == {"A", "B"}
    (da, _), (db, _) = await asyncio.gather(
        *(s.claim_deliveries(T, T + 15, limit=13) for s in pair)
    )
    assert not {d.id for d in da} & {d.id for d in db} and len(da) + len(db) == 24
    (ta, _), (tb, _) = await asyncio.gather(*(s.claim_deadlines(T, T + 15, limit=7) for s in pair))
    assert not {d.session_id for d in ta} & {d.session_id for d in tb}
    assert len(ta) + len(tb) == 12  # the finished sessions have no deadline
    again, _ = await b.claim_commands(T, T + 15)  # B's own again, none of A's
    assert {c.id for c in again} == {c.id for c in cb}


async def test_a_lapsed_lease_is_taken_over_and_a_renewed_one_is_not(pair: Any) -> None:
    """B gets nothing while A's lease runs; once it has run out B takes the work over
    (taken_from says whose), with the command's id and retry as A left them; a lease A
    renews in time stays A's."""
    a, b = pair
    await a.commit_step(session(1), _cmds(1))
    await a.commit_step(session(2), _cmds(1))
    [one, two], _ = await a.claim_commands(T, T + 15)
    assert (one.session_id, two.session_id) == ("s1", "s2") and one.taken_from is None
    assert await a.renew("command", [two.id], T + 30) == {two.id}
    assert await b.claim_commands(T + 10, T + 25) == ([], T + 15)  # A's first lease ends next
    await a.reissue_command("s1", 1, 1, T + 3)
    [taken], _ = await b.claim_commands(T + 16, T + 31)
    assert (taken.id, taken.taken_from, taken.retry, taken.window_start) == (one.id, "A", 1, T + 3)
    assert taken.command_id == one.command_id
    assert await a.renew("command", [one.id, two.id], T + 40) == {two.id}  # one is B's now
    mine, _ = await b.claim_commands(T + 31, T + 45)  # B's own again; two A's till T + 40
    assert [c.id for c in mine] == [one.id]


async def test_a_later_command_of_a_session_waits_for_the_earlier_ones(pair: Any) -> None:
    """A session's commands are claimed together, first pending first; while one is
    pending (claimed or not), no later one is anybody else's to claim."""
    a, b = pair
    await a.commit_step(session(1), _cmds(1, 2, 3))
    rows, _ = await a.claim_commands(T, T + 15, session_id="s1")
    assert [c.seq for c in rows] == [1, 2, 3]
    await a.finish_command("s1", 1, "sent", T, 1)
    assert (await b.claim_commands(T, T + 15))[0] == []  # 2 and 3 are A's
    await a.commit_step(session(1), _cmds(4))  # decided meanwhile (on any instance)
    assert (await b.claim_commands(T, T + 15, session_id="s1"))[0] == []  # 2 still pending
    await a.finish_command("s1", 2, "sent", T, 1)
    await a.finish_command("s1", 3, "failed", T, 1, "422")
    [four], _ = await b.claim_commands(T, T + 15)
    assert four.seq == 4 and four.taken_from is None  # 4 was never claimed
    # A's own claim is A's to claim again (a retry), never B's while it runs
    await a.commit_step(session(2), _cmds(1, 2))
    first, _ = await a.claim_commands(T, T + 15, session_id="s2")
    again, _ = await a.claim_commands(T + 1, T + 16, session_id="s2")
    assert [c.id for c in again] == [c.id for c in first]
    assert (await b.claim_commands(T + 1, T + 16, session_id="s2"))[0] == []


async def test_finishing_releases_and_a_clean_stop_lets_go_of_everything(pair: Any) -> None:
    """A finished command, a recorded delivery attempt and a step that changes the
    deadline let go of their claims; release() lets go of the rest at once."""
    a, b = pair
    await a.commit_step(session(1, deadline=T - 1, deadline_kind=DeadlineKind.GRACE), _cmds(1))
    await finished(a, 2, ["x"])
    [_cmd], _ = await a.claim_commands(T, T + 15)
    [delivery], _ = await a.claim_deliveries(T, T + 15)
    [deadline], _ = await a.claim_deadlines(T, T + 15)
    assert (deadline.session_id, deadline.kind, deadline.due) == ("s1", "grace", T - 1)
    await a.update_delivery(delivery.id, state="pending", attempts=1, at=T, next_at=T + 1)
    [again], _ = await b.claim_deliveries(T + 1, T + 16)  # due again, and unclaimed
    assert again.id == delivery.id and again.taken_from is None and again.attempts == 1
    assert again.submission is not None and again.submission["submission_id"] == "sub-2"
    # the step that fires the deadline sets another: the new one is unclaimed
    stored = await a.stored_by_call("v3:c1")
    moved = session(1, deadline=T - 0.5, deadline_kind=DeadlineKind.SPEECH)
    await a.commit_step(moved, version=stored.version)
    [fresh], _ = await b.claim_deadlines(T, T + 15)
    assert (fresh.kind, fresh.due, fresh.taken_from) == ("speech", T - 0.5, None)
    await a.finish_command("s1", 1, "sent", T, 1)
    assert (await b.claim_commands(T, T + 15))[0] == []
    # a clean stop: B lets go, and A need not wait for B's leases
    await a.commit_step(session(3, state=State.GATHERING), _cmds(1))
    assert len((await b.claim_commands(T, T + 15))[0]) == 1
    assert await b.release() == 3  # the command, the delivery and the deadline
    assert len((await a.claim_commands(T, T + 15))[0]) == 1
    assert [d.id for d in (await a.claim_deliveries(T + 1, T + 16))[0]] == [delivery.id]
    assert [d.session_id for d in (await a.claim_deadlines(T, T + 15))[0]] == ["s1"]


async def test_when_the_next_claim_may_come(pair: Any) -> None:
    """Each claim says when something not claimable now may become so: a delivery's due
    time or another instance's lease's end, so takeover needs no tight polling."""
    a, b = pair
    await finished(a, 1, ["x"])
    await a.commit_step(session(2, deadline=T + 50, deadline_kind=DeadlineKind.TIMEOUT))
    rows, _ = await a.claim_deliveries(NOW, NOW + 15)
    await a.update_delivery(rows[0].id, state="pending", attempts=1, at=T, next_at=T + 30)
    assert await b.claim_deliveries(T, T + 15) == ([], T + 30)
    assert await b.claim_deadlines(T, T + 15) == ([], T + 50)
    [claimed], _ = await a.claim_deliveries(T + 30, T + 45)
    assert await b.claim_deliveries(T + 31, T + 46) == ([], T + 45)  # A's lease
    assert await a.renew("delivery", [claimed.id], T + 60) == {claimed.id}
    assert await b.claim_deliveries(T + 46, T + 61) == ([], T + 60)


async def test_a_fired_deadline_is_not_fired_again_and_a_failed_one_is_let_go(pair: Any) -> None:
    """finish_deadline(fired) keeps a deadline its step did not move claimed for good (a
    dead Timer is not fired every lease); not fired, it is anybody's again at once; a
    deadline a step has moved is left as it is."""
    a, b = pair
    for n in (1, 2, 3):
        await a.commit_step(session(n, deadline=T - n, deadline_kind=DeadlineKind.GRACE))
    rows, _ = await a.claim_deadlines(T, T + 15)
    assert [d.session_id for d in rows] == ["s3", "s2", "s1"]
    await a.finish_deadline("s1", T - 1, True)
    await a.finish_deadline("s2", T - 2, False)
    moved = session(3, deadline=T + 60, deadline_kind=DeadlineKind.GRACE)
    await a.commit_step(moved, version=(await a.stored_by_call("v3:c3")).version)
    await a.finish_deadline("s3", T - 3, True)  # its step moved it: nothing
    [again], nxt = await b.claim_deadlines(T + 50, T + 65)
    assert (again.session_id, again.taken_from) == ("s2", None)
    assert nxt == T + 60  # s3's new deadline; s1 is never due again
    assert await a.release() == 0  # a fired deadline is not let go at a clean stop either
    assert [d.session_id for d in (await a.claim_deadlines(T + 61, T + 76))[0]] == ["s3"]
