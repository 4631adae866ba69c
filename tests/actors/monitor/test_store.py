"""metrics.db: sample history, downsampling on read, compaction into rollups, retention, alert records."""

from __future__ import annotations

from pathlib import Path

import pytest

from actors.monitor.messages import Alert, AlertState, RecoveryRecord, SilenceInfo
from actors.monitor.store import MetricsStore
from actors.notifier.messages import Severity

HOUR = 3600.0


async def test_samples_round_trip_and_skip_non_finite_values(tmp_path: Path) -> None:
    async with MetricsStore.open(tmp_path / "metrics.db") as store:
        assert await store.record(100.0, {"cpu": 10.0, 'disk{path="/"}': 50.0, "bad": float("nan")}) == 2
        await store.record(110.0, {"cpu": 20.0})
        points, step = await store.history("cpu", 0, 200, 100)
        assert (points, step) == ([(100.0, 10.0), (110.0, 20.0)], None)
        assert await store.series("", 10) == ["cpu", 'disk{path="/"}']
        assert await store.series("di", 10) == ['disk{path="/"}']
        assert await store.history("unknown", 0, 200, 100) == ([], None)


async def test_long_ranges_are_averaged_into_at_most_max_points(tmp_path: Path) -> None:
    async with MetricsStore.open(tmp_path / "metrics.db") as store:
        for t in range(1000):
            await store.record(float(t), {"x": float(t % 10)})
        points, step = await store.history("x", 0, 1000, 100)
    assert step == 10 and len(points) == 100
    assert all(v == pytest.approx(4.5) for _, v in points)


async def test_compaction_folds_old_points_into_rollups_and_drops_expired(tmp_path: Path) -> None:
    async with MetricsStore.open(tmp_path / "metrics.db") as store:
        now = 100 * HOUR
        for t in range(0, int(100 * HOUR), 150):  # a point every 2.5 minutes for 100 hours
            await store.record(float(t), {"x": 1.0 if (t // 150) % 2 else 3.0})
        folded = await store.compact(now, raw_retention_s=24 * HOUR, rollup_s=300, retention_s=72 * HOUR)
        raw_left = await store.db.read(
            lambda c: c.execute("SELECT count(*), min(ts) FROM samples").fetchone()
        )
        rollups = await store.db.read(
            lambda c: c.execute(
                "SELECT count(*), min(bucket), sum(n), min(lo), max(hi) FROM rollups"
            ).fetchone()
        )
        points, step = await store.history("x", 0, now, 10_000)
    assert folded == 76 * 24
    assert raw_left == (24 * 24, 76 * HOUR)
    count, first_bucket, folded_points, lo, hi = rollups
    assert first_bucket == 28 * HOUR and (lo, hi) == (1.0, 3.0)
    assert count == 48 * 12 and folded_points == 48 * 24  # 28h..76h kept as 5-minute buckets
    assert step is None and points[0] == (28 * HOUR, pytest.approx(2.0))


async def test_compaction_merges_a_bucket_that_straddled_the_cutoff(tmp_path: Path) -> None:
    async with MetricsStore.open(tmp_path / "metrics.db") as store:
        for t in range(0, 300, 60):
            await store.record(float(t), {"x": float(t)})
        await store.compact(150.0, raw_retention_s=0, rollup_s=300, retention_s=10_000)
        await store.compact(1000.0, raw_retention_s=0, rollup_s=300, retention_s=10_000)
        row = await store.db.read(
            lambda c: c.execute("SELECT bucket, n, total, lo, hi FROM rollups").fetchall()
        )
    assert row == [(0.0, 5, 600.0, 0.0, 240.0)]


def _alert(fp: str, state: AlertState, at: float) -> Alert:
    return Alert(fp, "R", "m", {"alertname": "R"}, state, Severity.WARNING, "s", 1.0, at, actions=("a",))


async def test_alert_episodes_are_upserted_and_reloaded(tmp_path: Path) -> None:
    async with MetricsStore.open(tmp_path / "metrics.db") as store:
        await store.save_alerts([_alert("f1", AlertState.PENDING, 1)], [])
        await store.save_alerts([_alert("f1", AlertState.FIRING, 1), _alert("f2", AlertState.PENDING, 2)], [])
        await store.save_alerts([], ["f2"])
        assert [(a.fingerprint, a.state) for a in await store.open_alerts()] == [("f1", AlertState.FIRING)]
        await store.save_alerts([_alert("f1", AlertState.RESOLVED, 1)], [])
        await store.save_alerts([_alert("f1", AlertState.FIRING, 10)], [])  # a new episode
        listed = await store.list_alerts(None, 10)
        assert [(a.state, a.active_at) for a in listed] == [(AlertState.FIRING, 10), (AlertState.RESOLVED, 1)]
        assert listed[0].actions == ("a",)
        assert len(await store.list_alerts(AlertState.RESOLVED, 10)) == 1


async def test_silences_recoveries_and_isolations_persist(tmp_path: Path) -> None:
    path = tmp_path / "metrics.db"
    async with MetricsStore.open(path) as store:
        await store.add_silence(SilenceInfo("s1", {"alertname": "R"}, 0, 100, "ops", "deploy"))
        assert await store.expire_silence("s1", 50)
        assert not await store.expire_silence("s1", 60)
        rec = await store.add_recovery(
            RecoveryRecord(0, 5, "p", "restart_actor", "locks", "f1", "ok", 1, "d")
        )
        await store.set_isolated("core-a", 7.0, {})
    async with MetricsStore.open(path) as store:
        (silence,) = await store.silences()
        assert silence.ends_at == 50
        assert await store.recoveries("locks", 10) == [rec] and rec.id == 1
        assert await store.isolated() == {"core-a": 7.0}
