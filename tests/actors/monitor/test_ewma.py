"""EWMA detector: spikes vs ramps, warm-up, floors, outliers kept out of the baseline, replay."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.monitor.ewma import Direction, EwmaConfig, EwmaDetector, Verdict


def _noisy_flat(n: int, *, level: float = 100.0, noise: float = 1.0, seed: int = 7) -> list[float]:
    rng = random.Random(seed)
    return [level + rng.gauss(0.0, noise) for _ in range(n)]


def _run(config: EwmaConfig, values: list[float]) -> list[Verdict]:
    detector = EwmaDetector(config)
    return [detector.observe(v).verdict for v in values]


CONFIG = EwmaConfig(EwmaConfig.alpha_from_span(30), threshold=4.0, warmup=20)


def test_alpha_from_span_and_half_life_follow_the_usual_conventions() -> None:
    assert EwmaConfig.alpha_from_span(1) == 1.0
    assert EwmaConfig.alpha_from_span(19) == pytest.approx(0.1)
    alpha = EwmaConfig.alpha_from_half_life(10)
    assert (1 - alpha) ** 10 == pytest.approx(0.5)


def test_spike_after_a_flat_series_is_flagged() -> None:
    verdicts = _run(CONFIG, [*_noisy_flat(200), 130.0])
    assert verdicts[-1] is Verdict.ANOMALOUS
    assert Verdict.ANOMALOUS not in verdicts[:-1]


def test_slow_ramp_is_never_flagged() -> None:
    # After the flat part the series climbs 0.2 noise-sigmas per point: +100 over 500 points.
    flat = _noisy_flat(100)
    ramp = [v + 0.2 * i for i, v in enumerate(_noisy_flat(500, seed=8))]
    verdicts = _run(CONFIG, flat + ramp)
    assert Verdict.ANOMALOUS not in verdicts
    assert ramp[-1] > flat[-1] + 90


def test_point_is_scored_against_the_estimate_before_it() -> None:
    detector = EwmaDetector(EwmaConfig(0.5, warmup=2, min_std=1.0, rel_min_std=0.0))
    detector.observe(10.0)
    detector.observe(10.0)
    obs = detector.observe(16.0)
    assert obs.mean == 10.0
    assert obs.score == pytest.approx(6.0)  # std floored at 1.0; the spike itself did not move the mean


def test_nothing_is_flagged_during_warm_up() -> None:
    verdicts = _run(EwmaConfig(0.1, warmup=10), [1.0] * 5 + [1000.0] + [1.0] * 3)
    assert set(verdicts) == {Verdict.WARMING}


def test_nan_and_infinities_are_rejected_without_changing_the_state() -> None:
    detector = EwmaDetector(CONFIG)
    for v in _noisy_flat(50):
        detector.observe(v)
    before = (detector.mean, detector.std)
    for bad in (math.nan, math.inf, -math.inf):
        assert detector.observe(bad).verdict is Verdict.REJECTED
    assert (detector.mean, detector.std) == before


def test_variance_floor_keeps_a_perfectly_flat_series_from_flagging_tiny_wobbles() -> None:
    verdicts = _run(CONFIG, [50.0] * 100 + [50.1, 49.9])
    assert verdicts[-2:] == [Verdict.NORMAL, Verdict.NORMAL]  # 1 % relative floor: 0.5 std
    assert _run(CONFIG, [50.0] * 100 + [55.0])[-1] is Verdict.ANOMALOUS


def test_a_burst_of_anomalies_does_not_drag_the_baseline() -> None:
    detector = EwmaDetector(CONFIG)
    for v in _noisy_flat(200):
        detector.observe(v)
    mean_before = detector.mean
    verdicts = [detector.observe(200.0).verdict for _ in range(10)]
    assert verdicts == [Verdict.ANOMALOUS] * 10
    assert detector.mean == mean_before


def test_a_lasting_level_shift_is_accepted_after_readapt_after_outliers() -> None:
    config = EwmaConfig(EwmaConfig.alpha_from_span(30), warmup=20, readapt_after=5)
    verdicts = _run(config, _noisy_flat(100) + _noisy_flat(20, level=200.0, seed=9))
    assert verdicts[100:105] == [Verdict.ANOMALOUS] * 5
    assert Verdict.ANOMALOUS not in verdicts[106:]


def test_direction_up_ignores_drops_but_keeps_them_out_of_the_mean() -> None:
    config = EwmaConfig(EwmaConfig.alpha_from_span(30), direction=Direction.UP)
    detector = EwmaDetector(config)
    for v in _noisy_flat(100):
        detector.observe(v)
    mean = detector.mean
    assert detector.observe(50.0).verdict is Verdict.NORMAL
    assert detector.mean == mean
    assert detector.observe(150.0).verdict is Verdict.ANOMALOUS


@given(st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), max_size=200))
def test_replaying_the_same_input_gives_identical_results(values: list[float]) -> None:
    def replay() -> list[tuple[Verdict, float | None]]:
        detector = EwmaDetector(EwmaConfig(0.2, warmup=5, readapt_after=3))
        return [(o.verdict, o.score) for o in map(detector.observe, values)]

    assert replay() == replay()


@given(st.lists(st.floats(min_value=-1e6, max_value=1e6), min_size=1, max_size=200))
def test_estimate_stays_finite_for_any_finite_input(values: list[float]) -> None:
    detector = EwmaDetector(EwmaConfig(0.3, warmup=3, readapt_after=2))
    for v in values:
        obs = detector.observe(v)
        assert obs.verdict is not Verdict.REJECTED
    assert detector.mean is not None and math.isfinite(detector.mean)
    assert detector.std is not None and math.isfinite(detector.std) and detector.std > 0
