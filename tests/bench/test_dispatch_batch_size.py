"""`BENCH_DISPATCH_BATCH` picks the dispatch-batch scenario's tasks per request, within the API's limit."""

from __future__ import annotations

import json

import pytest

from bench.scenarios.dispatch import BATCH, DispatchBatch, batch_size


def test_default_is_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BENCH_DISPATCH_BATCH", raising=False)
    assert batch_size() == BATCH


def test_the_environment_sets_the_size_of_each_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCH_DISPATCH_BATCH", "1000")
    size = batch_size()
    _, _, body = DispatchBatch(size=size).request(2)
    assert body is not None
    assert len(json.loads(body)["tasks"]) == 1000


@pytest.mark.parametrize("value", ["0", "1001"])
def test_sizes_outside_the_api_limit_are_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("BENCH_DISPATCH_BATCH", value)
    with pytest.raises(SystemExit):
        batch_size()


def test_the_limit_is_the_apis() -> None:
    from bench.scenarios.dispatch import MAX_BATCH
    from orch.http.routes_tasks import MAX_BATCH as API_MAX_BATCH

    assert MAX_BATCH == API_MAX_BATCH
