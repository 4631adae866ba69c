"""glibc malloc settings: applied on glibc, skipped when the operator set MALLOC_ARENA_MAX."""

from __future__ import annotations

import platform

import pytest

from orch import malloc_tuning

glibc_only = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc malloc only")


@glibc_only
def test_arenas_are_capped_on_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert malloc_tuning.limit_arenas(8)  # glibc's own default per core: harmless in the test process


def test_an_operators_malloc_arena_max_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert not malloc_tuning.limit_arenas()
