"""The dispatcher's hot messages built by `positional_builder` equal the ones their constructors build."""

from __future__ import annotations

import dataclasses
import pickle
from typing import Any

import pytest

from actors.dispatcher.messages import DispatchAccepted, TaskSpec, TaskStatus, TaskView
from actors.dispatcher.store import Change, Dispatched
from runtime import positional_builder

VIEW = TaskView(
    "t1", "c", 3, TaskStatus.QUEUED, 0, 3, 2.5, {"k": [1, 2]}, True, "key", 10.0, None, None, None,
    False, None, {"r": 1}, "boom", 9.0, 9.5, None,
)  # fmt: skip
SAMPLES: list[Any] = [
    TaskSpec("c", 5, 1.5, {"a": 1}, True, "key", 7, 12.0),
    VIEW,
    DispatchAccepted(VIEW, True, 4, 11.0),
    Dispatched(VIEW, False),
    Change("c", 2, TaskStatus.QUEUED, TaskStatus.CLAIMED, 3.0),
]


def values(obj: Any) -> list[Any]:
    return [getattr(obj, f.name) for f in dataclasses.fields(obj)]


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: type(s).__name__)
def test_builds_a_message_equal_to_the_constructors(sample: Any) -> None:
    built = positional_builder(type(sample))(*values(sample))
    assert type(built) is type(sample)
    assert built == sample and repr(built) == repr(sample)
    assert pickle.loads(pickle.dumps(built)) == built
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(built, dataclasses.fields(built)[0].name, None)


def test_a_built_change_hashes_as_the_constructors() -> None:
    change = SAMPLES[-1]
    assert hash(positional_builder(Change)(*values(change))) == hash(change)
