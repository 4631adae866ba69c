"""positional_builder: the cheap constructor of hot frozen messages builds the very same object."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from dataclasses import dataclass, field
from typing import Any

import pytest

from actors.dispatcher.builders import positional_builder
from actors.dispatcher.messages import DispatchAccepted, TaskSpec, TaskStatus, TaskView
from actors.dispatcher.store import Change, Dispatched

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
def test_builds_an_object_equal_to_the_constructors(sample: Any) -> None:
    built = positional_builder(type(sample))(*values(sample))
    assert type(built) is type(sample)
    assert built == sample and repr(built) == repr(sample)
    assert values(built) == values(sample)


def test_a_built_object_hashes_as_the_constructors() -> None:
    change = SAMPLES[-1]
    assert hash(positional_builder(Change)(*values(change))) == hash(change)


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: type(s).__name__)
def test_the_built_object_stays_frozen_and_slotted(sample: Any) -> None:
    built = positional_builder(type(sample))(*values(sample))
    name = dataclasses.fields(built)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(built, name, None)
    assert not hasattr(built, "__dict__")
    assert pickle.loads(pickle.dumps(built)) == built
    assert copy.copy(built) == built
    first = dataclasses.fields(built)[0]
    assert dataclasses.replace(built, **{first.name: getattr(sample, first.name)}) == sample


def test_every_field_must_be_given() -> None:
    build = positional_builder(TaskSpec)
    with pytest.raises(TypeError):
        build("c", 0)


@dataclass(slots=True)
class _Mutable:
    a: int


@dataclass(frozen=True)
class _NoSlots:
    a: int


@dataclass(frozen=True, slots=True)
class _Checked:
    a: int

    def __post_init__(self) -> None:
        if self.a < 0:
            raise ValueError("negative")


@dataclass(frozen=True, slots=True)
class _Derived(TaskSpec):
    extra: int = 0


@dataclass(frozen=True, slots=True)
class _NotInit:
    a: int
    b: int = field(init=False, default=0)


@pytest.mark.parametrize("cls", [_Mutable, _NoSlots, _Checked, _Derived, _NotInit, int])
def test_refuses_a_class_it_would_build_differently(cls: type[Any]) -> None:
    with pytest.raises(TypeError):
        positional_builder(cls)
