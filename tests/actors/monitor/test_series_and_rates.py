"""Series keys and counter rates."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.monitor.rates import RateDeriver
from actors.monitor.series import SeriesKeyError, parse_series, series_key


def test_keys_are_canonical_and_parse_back() -> None:
    key = series_key("disk_used_percent", {"path": "/var", "host": 'a"b'})
    assert key == 'disk_used_percent{host="a\\"b",path="/var"}'
    assert parse_series(key) == ("disk_used_percent", {"host": 'a"b', "path": "/var"})
    assert parse_series("cpu") == ("cpu", {})


@given(
    st.dictionaries(st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True), st.text(max_size=12), max_size=4)
)
def test_any_label_set_round_trips(labels: dict[str, str]) -> None:
    assert parse_series(series_key("m", labels)) == ("m", labels)


@pytest.mark.parametrize("bad", ["", "1abc", 'm{a="x"', "m{a=x}", 'm{="x"}', 'm{a="x";b="y"}'])
def test_malformed_keys_are_refused(bad: str) -> None:
    with pytest.raises(SeriesKeyError):
        parse_series(bad)


def test_counters_become_per_second_rates_and_resets_are_skipped() -> None:
    rates = RateDeriver()
    assert rates.derive(0, {'req_total{route="/a"}': 100, "gauge": 5}) == {}
    assert rates.derive(10, {'req_total{route="/a"}': 150}) == {'req_per_s{route="/a"}': 5.0}
    assert rates.derive(20, {'req_total{route="/a"}': 3}) == {}  # process restarted: counter reset
    assert rates.derive(30, {'req_total{route="/a"}': 23}) == {'req_per_s{route="/a"}': 2.0}
