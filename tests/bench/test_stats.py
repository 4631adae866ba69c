"""Pure pieces of the harness: percentiles, medians, timelines, wrk output parsing, loopback guard."""

from __future__ import annotations

import math

import pytest

from bench.harness.load import Group, HttpOp, LoadPlan
from bench.harness.report import Measurement, summarize
from bench.harness.servers import ResourceUsage
from bench.harness.stats import LatencySummary, median, percentile, summarize_latencies, timeline
from bench.harness.wrk import parse_wrk

WRK_OUTPUT = """Running 3s test @ http://127.0.0.1:40000/health
  1 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    55.00ms   27.81ms   1.20s    87.01%
    Req/Sec     0.94k   363.73     1.51k    56.00%
  Latency Distribution
     50%   48.10ms
     75%   60.00ms
     90%   80.00ms
     99%  150.50ms
  4713 requests in 5.02s, 579.92KB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:    939.11
"""


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([7.0], 99) == 7.0
    assert math.isnan(percentile([], 50))


def test_percentile_rejects_out_of_range_quantiles() -> None:
    with pytest.raises(ValueError, match=r"0\.\.100"):
        percentile([1.0], 101)


def test_median_skips_nan_and_averages_even_counts() -> None:
    assert median([3.0, math.nan, 1.0, 2.0]) == 2.0
    assert median([1.0, 2.0, 3.0, 10.0]) == 2.5
    assert math.isnan(median([math.nan]))


def test_latency_summary_is_in_milliseconds() -> None:
    summary = summarize_latencies([0.001] * 98 + [0.5, 1.0])
    assert summary.count == 100
    assert summary.p50_ms == pytest.approx(1.0)
    assert summary.p99_ms == pytest.approx(500.0)
    assert summary.max_ms == pytest.approx(1000.0)


def test_timeline_buckets_by_completion_time_and_keeps_empty_seconds() -> None:
    buckets = timeline([0.1, 0.2, 2.5], [0.1, 1.0, 0.01], width=1.0)
    assert [b.start for b in buckets] == [0.0, 1.0, 2.0]
    assert [b.count for b in buckets] == [1, 1, 1]
    assert buckets[1].p99_ms == pytest.approx(1000.0)


def _m(target: str, run: int, rps: float, reference: str | None = None) -> Measurement:
    latency = LatencySummary(10, 1.0, 1.0, 2.0, 3.0, 4.0)
    return Measurement(target, "g", 50, run, 10, 10, run, 1.0, rps, rps, latency, reference=reference)


def test_summary_takes_medians_sums_errors_and_computes_ratio_to_reference() -> None:
    runs = [_m("orch", r, rps, "baseline") for r, rps in enumerate([900.0, 1000.0, 1300.0])]
    runs += [_m("baseline", r, rps) for r, rps in enumerate([1600.0, 2000.0, 1900.0])]
    rows = {m.target: m for m in summarize(runs)}
    assert rows["orch"].rps == 1000.0
    assert rows["orch"].runs == 3
    assert rows["orch"].errors == 0 + 1 + 2
    assert rows["orch"].ratio == pytest.approx(1000.0 / 1900.0)
    assert math.isnan(rows["baseline"].ratio)


def test_wrk_output_is_parsed_with_errors_and_percentiles() -> None:
    result = parse_wrk(WRK_OUTPUT)
    assert result.requests == 4713
    assert result.seconds == pytest.approx(5.02)
    assert result.errors == 3 + 4
    assert result.latency.p50_ms == pytest.approx(48.1)
    assert result.latency.p99_ms == pytest.approx(150.5)
    assert result.latency.max_ms == pytest.approx(1200.0)


@pytest.mark.parametrize("url", ["http://10.0.0.1:8080", "http://example.com", "http://192.168.1.2:80"])
def test_load_plans_refuse_anything_but_loopback(url: str) -> None:
    with pytest.raises(ValueError, match=r"only ever sent to 127\.0\.0\.1"):
        LoadPlan(url, (Group("g", HttpOp(), 1),), seconds=1.0)


def test_resource_usage_counts_cpu_only_inside_the_load_window() -> None:
    # 1 s idle start-up, 2 s at 80 % (box 150 %), 1 s idle drain; sampled every 0.5 s.
    samples = [(0.5, 50.0, 0.0, 20.0), (1.0, 50.0, 0.0, 20.0)]
    samples += [(1.0 + 0.5 * k, 60.0, 80.0, 150.0) for k in range(1, 5)]
    samples += [(3.5, 60.0, 0.0, 20.0), (4.0, 60.0, 0.0, 20.0)]
    usage = ResourceUsage(4.0, 40.0, 50.0, 60.0, 60.0, 10, 60.0, tuple(samples), started_at=1000.0)
    assert usage.within(1001.0, 1003.0) == pytest.approx((80.0, 150.0))
    assert usage.within(1000.0, 1004.0) == pytest.approx((40.0, 85.0))
    assert usage.within(2000.0, 2001.0) == (40.0, 60.0)  # no overlap: the whole-run figures
