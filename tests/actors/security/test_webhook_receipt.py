"""`VerifyWebhook.durable`: the verdict comes at once and the `Receipt` settles once the delivery's replay
keys are committed, or fails (ActorCrashed) when they never will be."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import trio

from actors.security.committer import Committer
from actors.security.messages import Receipt, VerifyWebhook, WebhookVerdict
from actors.security.store import Change
from runtime import ActorCrashed

from .conftest import FakeClock
from .test_webhook_replay_restart import Ref, running, signed, stored_keys


async def verify_with_receipt(
    ref: Ref, headers: dict[str, str], body: bytes
) -> tuple[WebhookVerdict, Receipt]:
    receipt = Receipt()
    verdict = await ref.ask(lambda r: VerifyWebhook(headers, body, "203.0.113.9", r, durable=receipt))
    return verdict, receipt


async def test_verdict_comes_before_the_commit_and_the_receipt_after_it(
    db_path: Path, clock: FakeClock
) -> None:
    body = b'{"event":"ping"}'
    async with running(db_path, clock) as ref:
        verdict, receipt = await verify_with_receipt(ref, signed(body, int(clock.now)), body)
        answered_before_commit = not receipt.settled
        await receipt.wait()
        after = await trio.to_thread.run_sync(stored_keys, db_path)
    assert verdict.ok and answered_before_commit and after == 1


async def test_a_replay_is_refused_while_the_first_delivery_still_commits(
    db_path: Path, clock: FakeClock
) -> None:
    body = b'{"event":"ping"}'
    headers = signed(body, int(clock.now))
    async with running(db_path, clock) as ref:
        first, receipt = await verify_with_receipt(ref, headers, body)
        replay, replay_receipt = await verify_with_receipt(ref, headers, body)
        await receipt.wait()
    assert first.ok and (replay.ok, replay.status) == (False, 409)
    assert replay_receipt.settled  # nothing to commit for a refusal: settled with the verdict


async def test_a_refused_delivery_settles_its_receipt_at_once(db_path: Path, clock: FakeClock) -> None:
    async with running(db_path, clock) as ref:
        verdict, receipt = await verify_with_receipt(ref, {"X-Signature": "t=1,v1=" + "0" * 64}, b"{}")
    assert (verdict.ok, verdict.status) == (False, 401)
    assert receipt.settled


class FailingStore:
    """A SecurityStore stand-in whose commit fails."""

    async def apply(self, *changes: Change) -> None:
        raise sqlite3.OperationalError("disk I/O error")


async def test_a_failed_commit_fails_the_receipts_waiting_for_it() -> None:
    committer = Committer(FailingStore(), lambda: 0.0)  # type: ignore[arg-type]
    receipt = Receipt()
    committer.submit(Change(replays=(("k", 1.0),)), receipt.done, abort=receipt.fail)
    with pytest.raises(sqlite3.OperationalError):
        await committer.run()
    with pytest.raises(ActorCrashed):
        await receipt.wait()


async def test_a_committer_cancelled_before_the_commit_fails_the_receipts() -> None:
    committer = Committer(FailingStore(), lambda: 0.0)  # type: ignore[arg-type]
    receipt = Receipt()
    committer.submit(Change(replays=(("k", 1.0),)), receipt.done, abort=receipt.fail)
    with trio.CancelScope() as scope:
        scope.cancel()  # the actor crashed elsewhere: its nursery cancels the committer
        await committer.run()
    with pytest.raises(ActorCrashed):
        await receipt.wait()


async def test_receipt_settles_once() -> None:
    receipt = Receipt()
    receipt.done()
    receipt.fail(RuntimeError("too late"))
    await receipt.wait()  # the first settlement wins
    assert receipt.settled
