"""Webhook replay protection survives a restart: accepted replay keys are durable before the verdict,
reloaded at start-up (unexpired only), and pruned from the database.

Signatures are computed here with hmac (not by orch's code); every test uses a real SQLite file.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import trio

from actors.security.actor import SecurityActor
from actors.security.messages import SecurityMsg, VerifyWebhook, WebhookVerdict
from actors.security.settings import WebhookSettings
from actors.security.store import Change, SecurityStore
from actors.security.webhooks import ReplayCache
from actors.storage import Database
from runtime import ActorRef, open_actor

from .conftest import FakeClock, make_settings

SIG_SECRET = b"webhook-secret-0123456789abcdef"
GH_SECRET = b"github-secret-0123456789abcdef"
WEBHOOKS = WebhookSettings(signature_secrets=(SIG_SECRET,), github_secrets=(GH_SECRET,), tolerance=300.0)

Ref = ActorRef[SecurityMsg]


@asynccontextmanager
async def running(
    db_path: Path, clock: FakeClock, webhooks: WebhookSettings = WEBHOOKS, prune_every: float = 3600.0
) -> AsyncIterator[Ref]:
    """A security actor on `db_path`; leaving the block stops it and closes the database."""
    settings = make_settings(webhooks=webhooks)
    async with Database.open(db_path) as db:

        def factory() -> SecurityActor:
            return SecurityActor(
                db, settings, clock=clock, reload_interval=3600.0, replay_prune_interval=prune_every
            )

        async with open_actor(factory, name="security") as ref:
            yield ref


def signed(body: bytes, t: int) -> dict[str, str]:
    sig = hmac.new(SIG_SECRET, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Signature": f"t={t},v1={sig}"}


def github(body: bytes, delivery: str) -> dict[str, str]:
    sig = hmac.new(GH_SECRET, body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={sig}", "X-GitHub-Delivery": delivery}


async def verify(ref: Ref, headers: dict[str, str], body: bytes) -> WebhookVerdict:
    return await ref.ask(lambda r: VerifyWebhook(headers, body, "203.0.113.9", r))


def stored_keys(db_path: Path) -> int:
    conn = sqlite3.connect(db_path)
    try:
        return int(conn.execute("SELECT count(*) FROM webhook_replays").fetchone()[0])
    finally:
        conn.close()


async def test_delivery_accepted_before_a_restart_is_refused_as_a_replay_after_it(
    db_path: Path, clock: FakeClock
) -> None:
    body = b'{"event":"ping"}'
    headers = signed(body, int(clock.now))
    async with running(db_path, clock) as ref:
        first = await verify(ref, headers, body)
    clock.advance(10)
    async with running(db_path, clock) as ref:
        replay = await verify(ref, headers, body)
    assert first.ok
    assert (replay.ok, replay.status, replay.reason) == (False, 409, "replayed signature")


async def test_verdict_is_sent_only_once_its_replay_key_is_committed(db_path: Path, clock: FakeClock) -> None:
    # What a kill -9 right after the 2xx would leave: the file, read by another connection, already has it.
    body = b'{"event":"ping"}'
    async with running(db_path, clock) as ref:
        before = await trio.to_thread.run_sync(stored_keys, db_path)
        verdict = await verify(ref, signed(body, int(clock.now)), body)
        after = await trio.to_thread.run_sync(stored_keys, db_path)
    assert verdict.ok and (before, after) == (0, 1)


async def test_github_delivery_id_is_deduplicated_across_a_restart(db_path: Path, clock: FakeClock) -> None:
    async with running(db_path, clock) as ref:
        first = await verify(ref, github(b'{"n":1}', "d-42"), b'{"n":1}')
    clock.advance(3600)  # far past the 300 s tolerance: only the delivery id can catch this one
    async with running(db_path, clock) as ref:
        # Same delivery id, different (validly signed) body: a redelivery, not a new event.
        again = await verify(ref, github(b'{"n":2}', "d-42"), b'{"n":2}')
        other = await verify(ref, github(b'{"n":2}', "d-43"), b'{"n":2}')
    assert first.ok and other.ok
    assert (again.status, again.reason) == (409, "delivery already processed")


async def test_standard_webhook_id_is_deduplicated_across_a_restart(db_path: Path, clock: FakeClock) -> None:
    key = b"standard-key-0123456789abcdefgh"
    webhooks = WebhookSettings(standard_secrets=("whsec_" + base64.b64encode(key).decode(),))
    t = int(clock.now)

    def std(body: bytes) -> dict[str, str]:
        mac = hmac.new(key, f"msg_1.{t}.".encode() + body, hashlib.sha256).digest()
        sig = "v1," + base64.b64encode(mac).decode()
        return {"webhook-id": "msg_1", "webhook-timestamp": str(t), "webhook-signature": sig}

    async with running(db_path, clock, webhooks) as ref:
        first = await verify(ref, std(b"{}"), b"{}")
    async with running(db_path, clock, webhooks) as ref:
        again = await verify(ref, std(b'{"x":1}'), b'{"x":1}')
    assert first.ok and (again.status, again.reason) == (409, "webhook-id already processed")


async def test_expired_delivery_key_is_not_loaded_after_a_restart(db_path: Path, clock: FakeClock) -> None:
    webhooks = WebhookSettings(github_secrets=(GH_SECRET,), github_delivery_ttl=60.0)
    body = b'{"n":1}'
    async with running(db_path, clock, webhooks) as ref:
        first = await verify(ref, github(body, "d-7"), body)
    clock.advance(61)
    async with running(db_path, clock, webhooks) as ref:
        again = await verify(ref, github(body, "d-7"), body)
    assert first.ok and again.ok


async def test_expired_keys_are_pruned_from_the_database(
    db_path: Path, clock: FakeClock, autojump_clock: trio.abc.Clock
) -> None:
    bodies = [b'{"n":%d}' % i for i in range(3)]
    async with running(db_path, clock) as ref:
        for body in bodies:
            assert (await verify(ref, signed(body, int(clock.now)), body)).ok
    assert await trio.to_thread.run_sync(stored_keys, db_path) == 3
    clock.advance(301)  # past t + tolerance: every key has expired
    async with running(db_path, clock, prune_every=30.0) as ref:
        fresh = b'{"n":"fresh"}'
        assert (await verify(ref, signed(fresh, int(clock.now)), fresh)).ok
        for _ in range(100):
            await trio.sleep(30)
            if await trio.to_thread.run_sync(stored_keys, db_path) == 1:
                break
    assert await trio.to_thread.run_sync(stored_keys, db_path) == 1  # only the unexpired one is left


async def test_store_loads_only_unexpired_keys_and_prunes_in_batches(db_path: Path) -> None:
    async with Database.open(db_path) as db:
        store = SecurityStore(db)
        await store.migrate()
        rows = tuple((f"k{i}", 100.0 + i) for i in range(10))
        await store.apply(Change(replays=rows))
        loaded = await store.load_replays(104.5, limit=3)
        pruned = await store.prune_replays(104.5, batch=2)
        left = await store.load_replays(0.0, limit=100)
    assert loaded == [("k9", 109.0), ("k8", 108.0), ("k7", 107.0)]  # the last to expire survive a small cap
    assert pruned == 5
    assert sorted(k for k, _ in left) == [f"k{i}" for i in range(5, 10)]


def test_cache_restore_skips_expired_keys_keeps_the_latest_expiry_and_stays_bounded() -> None:
    cache = ReplayCache(max_entries=2)
    cache.restore([("old", 5.0), ("a", 20.0), ("a", 30.0), ("b", 40.0), ("c", 50.0)], now=10.0)
    assert not cache.seen("old", 10.0)
    assert len(cache) == 2 and cache.seen("b", 10.0) and cache.seen("c", 10.0)
    cache = ReplayCache()
    cache.restore([("a", 30.0), ("a", 20.0)], now=10.0)
    assert cache.seen("a", 25.0)
