"""Throughput of the security actor's hot paths, through real asks to a running actor.

- authorize: verify a token + role check + rate-limit unit, in ONE ask (target >= 15,000/s)
- authorize-cold: the same with a token never seen before each time (signature verified, no cache)
- webhook: VerifyWebhook for each scheme, every delivery distinct (target >= 20,000/s)
- pure: the same work without the actor, to show what the ask itself costs

Usage:  .venv/bin/python bench/security_bench.py [--seconds 3] [--callers 50]
"""

from __future__ import annotations

import argparse
import base64
import gc
import hashlib
import hmac
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import trio
from nacl.signing import SigningKey

from actors.security.actor import SecurityActor
from actors.security.messages import (
    Action,
    Authorize,
    CreateUser,
    Login,
    RatePolicy,
    Role,
    SecurityMsg,
    TokenPair,
    VerifyWebhook,
    WebhookVerdict,
)
from actors.security.ratelimit import GcraLimiter
from actors.security.settings import JwtKey, SecuritySettings, WebhookSettings
from actors.security.tokens import TokenCodec, TokenType
from actors.security.webhooks import WebhookVerifier
from actors.storage import Database
from runtime import ActorRef, open_actor

SIG_SECRET = b"bench-webhook-secret-0123456789"
GH_SECRET = b"bench-github-secret-0123456789"
STD_KEY = b"bench-standard-secret-0123456789"
ED_KEY = SigningKey(b"\x05" * 32)
BIG = RatePolicy("default", limit=10**9, window=1.0)

SETTINGS = SecuritySettings(
    jwt_keys=(JwtKey("k1", secret=b"bench-jwt-secret-0123456789-abcdefgh"),),
    active_kid="k1",
    bcrypt_cost=4,
    rate_limits={"default": BIG, "read": RatePolicy("read", limit=10**9, window=1.0)},
    webhooks=WebhookSettings(
        signature_secrets=(SIG_SECRET,),
        github_secrets=(GH_SECRET,),
        standard_secrets=("whsec_" + base64.b64encode(STD_KEY).decode(),),
        standard_public_keys=("whpk_" + base64.b64encode(bytes(ED_KEY.verify_key)).decode(),),
    ),
)


async def measure(name: str, callers: int, seconds: float, one: Callable[[int], Awaitable[object]]) -> float:
    """Run `one(i)` from `callers` concurrent tasks for `seconds`; print and return operations per second."""
    count = 0
    deadline = trio.current_time() + seconds

    async def caller(k: int) -> None:
        nonlocal count
        i = k
        while trio.current_time() < deadline:
            await one(i)
            count += 1
            i += callers

    started = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for k in range(callers):
            nursery.start_soon(caller, k)
    elapsed = time.perf_counter() - started
    rate = count / elapsed
    each = 1e6 / rate
    print(
        f"{name:<34} {rate:>10,.0f} /s   ({each:6.1f} us each, {count} in {elapsed:.1f}s, {callers} callers)"
    )
    return rate


def webhook_requests(scheme: str, n: int, now: int) -> list[tuple[dict[str, str], bytes]]:
    """n distinct, validly signed deliveries (computed here with hmac/nacl, not by orch)."""
    out: list[tuple[dict[str, str], bytes]] = []
    for i in range(n):
        body = b'{"task":"t-%d","status":"succeeded","attempt":1}' % i
        if scheme == "signature":
            sig = hmac.new(SIG_SECRET, f"{now}.".encode() + body, hashlib.sha256).hexdigest()
            out.append(({"X-Signature": f"t={now},v1={sig}"}, body))
        elif scheme == "github":
            sig = hmac.new(GH_SECRET, body, hashlib.sha256).hexdigest()
            out.append(({"X-Hub-Signature-256": f"sha256={sig}", "X-GitHub-Delivery": f"d-{i}"}, body))
        else:
            msg_id = f"{scheme}-{i}"
            signed = f"{msg_id}.{now}.".encode() + body
            if scheme == "standard-v1":
                value = "v1," + base64.b64encode(hmac.new(STD_KEY, signed, hashlib.sha256).digest()).decode()
            else:
                value = "v1a," + base64.b64encode(ED_KEY.sign(signed).signature).decode()
            headers = {"webhook-id": msg_id, "webhook-timestamp": str(now), "webhook-signature": value}
            out.append((headers, body))
    return out


async def bench_actor(path: Path, seconds: float, callers: int) -> None:
    async with Database.open(path, synchronous="NORMAL") as db:
        async with open_actor(lambda: SecurityActor(db, SETTINGS), capacity=10_000, name="security") as ref:
            await bench_authorize(ref, seconds, callers)
            now = int(time.time())
            for scheme in ("signature", "github", "standard-v1", "standard-v1a"):
                reqs = webhook_requests(scheme, 200_000 if scheme != "standard-v1a" else 30_000, now)

                async def verify(i: int, reqs: list[tuple[dict[str, str], bytes]] = reqs) -> None:
                    headers, body = reqs[i % len(reqs)]
                    verdict: WebhookVerdict = await ref.ask(
                        lambda r: VerifyWebhook(headers, body, "bench", r)
                    )
                    assert verdict.ok or i >= len(reqs), verdict

                await measure(f"actor webhook {scheme}", callers, seconds, verify)


async def _user_token(ref: ActorRef[SecurityMsg], name: str) -> str:
    await ref.ask(lambda r: CreateUser(name, "bench password", Role.OPERATOR, "bench", r))
    pair: TokenPair = await ref.ask(lambda r: Login(name, "bench password", f"ip-{name}", r))
    return pair.access_token


async def bench_authorize(ref: ActorRef[SecurityMsg], seconds: float, callers: int) -> None:
    tokens: list[str] = []
    for name in [f"user{u}" for u in range(20)]:
        tokens.append(await _user_token(ref, name))

    async def authorize(i: int) -> None:
        token = tokens[i % len(tokens)]
        await ref.ask(lambda r: Authorize(token, Action.TASK_READ, "read", "bench", r))

    await measure("actor authorize (1 caller)", 1, seconds, authorize)
    await measure("actor authorize", callers, seconds, authorize)

    codec = TokenCodec(SETTINGS)
    now = time.time()
    cold = [
        codec.issue(sub=f"user{i % 20}", role=Role.OPERATOR, typ=TokenType.ACCESS, ttl=600, now=now)[0]
        for i in range(60_000)
    ]

    async def authorize_cold(i: int) -> None:
        token = cold[i % len(cold)]
        await ref.ask(lambda r: Authorize(token, Action.TASK_READ, "read", "bench", r))

    await measure("actor authorize, cold token cache", callers, min(seconds, 2.0), authorize_cold)


def bench_pure(seconds: float) -> None:
    codec = TokenCodec(SETTINGS)
    now = time.time()
    token, _ = codec.issue(sub="u", role=Role.OPERATOR, typ=TokenType.ACCESS, ttl=600, now=now)
    expected = {TokenType.ACCESS}
    timed("pure PyJWT verify (no cache)", seconds, lambda i: codec.verify(token, now=now, expected=expected))
    limiter = GcraLimiter()
    timed("pure GCRA take", seconds, lambda i: limiter.take(BIG, ("user", i % 1000), now))
    verifier = WebhookVerifier(SETTINGS.webhooks)
    reqs = webhook_requests("signature", 300_000, int(now))
    timed("pure webhook verify (signature)", seconds, lambda i: verifier.verify(*reqs[i % len(reqs)], now))


def timed(name: str, seconds: float, fn: Callable[[int], object]) -> None:
    count = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        for _ in range(1000):
            fn(count)
            count += 1
    rate = count / (time.perf_counter() - started)
    print(f"{name:<34} {rate:>10,.0f} /s   ({1e6 / rate:6.1f} us each)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--callers", type=int, default=50)
    parser.add_argument(
        "--gc-tuned",
        action="store_true",
        help="gen-0 threshold 100,000 as DESIGN.md section 7 suggests for the node",
    )
    args = parser.parse_args()
    if args.gc_tuned:
        gc.set_threshold(100_000, 50, 100)
    bench_pure(min(args.seconds, 1.0))
    with tempfile.TemporaryDirectory() as tmp:
        trio.run(bench_actor, Path(tmp) / "bench.db", args.seconds, args.callers)


if __name__ == "__main__":
    main()
