"""Runtime-changeable settings with a version history, so a bad change can be rolled back.

Each setting registers how to apply a value. `change` applies a new value, records it as a version and
tells the listeners (the monitor's `SettingChanged`: a rollback policy reverts settings changed shortly
before an alert starts). `rollback` re-applies the last known good version: the newest earlier version that
was not itself rolled back. Values are JSON-shaped so versions can be shown over HTTP.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

__all__ = ["NoGoodVersion", "RuntimeSettings", "SettingVersion", "UnknownSetting"]

Apply = Callable[[Any], Awaitable[None]]
Listener = Callable[[str, float], None]
MAX_VERSIONS = 50  # per setting; the oldest are forgotten


class UnknownSetting(LookupError):
    """No runtime setting has that key."""


class NoGoodVersion(LookupError):
    """There is no earlier version to roll back to."""


@dataclass(frozen=True, slots=True)
class SettingVersion:
    """One value a setting had. ``rolled_back`` marks a version that was reverted (known bad)."""

    key: str
    version: int
    value: Any
    at: float
    by: str
    reason: str
    rolled_back: bool = False


class _Setting:
    def __init__(self, key: str, apply: Apply, initial: SettingVersion) -> None:
        self.key = key
        self.apply = apply
        self.versions: list[SettingVersion] = [initial]

    def add(self, value: Any, by: str, reason: str, at: float) -> SettingVersion:
        version = SettingVersion(self.key, self.versions[-1].version + 1, value, at, by, reason)
        self.versions = [*self.versions[-(MAX_VERSIONS - 1) :], version]
        return version


class RuntimeSettings:
    """The node's registry of runtime-changeable settings (see module doc)."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._settings: dict[str, _Setting] = {}
        self._listeners: list[Listener] = []
        self._clock = clock

    def register(self, key: str, apply: Apply, initial: Any, *, source: str = "config") -> None:
        """Declare setting ``key`` whose value now is ``initial`` (version 1)."""
        if key in self._settings:
            raise ValueError(f"runtime setting {key!r} registered twice")
        first = SettingVersion(key, 1, initial, self._clock(), source, "initial")
        self._settings[key] = _Setting(key, apply, first)

    def on_change(self, listener: Listener) -> None:
        """Call ``listener(key, at)`` after every change made through `change` (not rollbacks)."""
        self._listeners.append(listener)

    def keys(self) -> list[str]:
        """Registered keys, sorted."""
        return sorted(self._settings)

    def current(self, key: str) -> SettingVersion:
        """The version in force."""
        return self._get(key).versions[-1]

    def history(self, key: str) -> list[SettingVersion]:
        """Every remembered version, oldest first."""
        return list(self._get(key).versions)

    async def change(self, key: str, value: Any, *, by: str, reason: str = "changed") -> SettingVersion:
        """Apply ``value`` (the apply function may refuse it by raising) and record it as a new version."""
        setting = self._get(key)
        await setting.apply(value)
        version = setting.add(value, by, reason, self._clock())
        for listener in self._listeners:
            listener(key, version.at)
        return version

    async def rollback(self, key: str, *, by: str = "monitor") -> SettingVersion:
        """Mark the version in force bad and re-apply the last known good one (as a new version)."""
        setting = self._get(key)
        current = setting.versions[-1]
        good = next((v for v in reversed(setting.versions[:-1]) if not v.rolled_back), None)
        if good is None:
            raise NoGoodVersion(f"no earlier good version of {key!r} to roll back to")
        await setting.apply(good.value)
        setting.versions[-1] = replace(current, rolled_back=True)
        return setting.add(
            good.value, by, f"rollback of v{current.version} to v{good.version}", self._clock()
        )

    def _get(self, key: str) -> _Setting:
        try:
            return self._settings[key]
        except KeyError:
            raise UnknownSetting(f"no runtime setting {key!r}") from None
