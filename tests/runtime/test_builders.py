"""positional_builder: the cheap constructor of hot frozen dataclasses builds the very same object."""

from __future__ import annotations

import copy
import dataclasses
import enum
import pickle
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import pytest

from runtime import positional_builder


class _Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclass(frozen=True, slots=True)
class _Event:
    seq: int
    kind: str
    subject: str | None
    data: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class _Change:
    core_id: str
    priority: int
    old: _Colour | None
    new: _Colour
    at: float


@dataclass(frozen=True, slots=True)
class _Spec:
    core_id: str
    priority: int = 0
    metadata: Mapping[str, Any] = field(default_factory=dict)
    key: str | None = None


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Outcome(Generic[T]):
    value: T
    changes: tuple[_Change, ...]


SAMPLES: list[Any] = [
    _Event(7, "task.queued", None, {"k": [1, 2]}),
    _Change("c", 2, _Colour.RED, _Colour.BLUE, 3.0),
    _Spec("c", 5, {"a": 1}, "key"),
    _Outcome(["v"], (_Change("c", 2, None, _Colour.BLUE, 3.0),)),
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
    change = SAMPLES[1]
    assert hash(positional_builder(_Change)(*values(change))) == hash(change)


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
    build = positional_builder(_Spec)
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
class _Derived(_Spec):
    extra: int = 0


@dataclass(frozen=True, slots=True)
class _NotInit:
    a: int
    b: int = field(init=False, default=0)


@dataclass(frozen=True, slots=True)
class _Reserved:
    obj_: int


@pytest.mark.parametrize("cls", [_Mutable, _NoSlots, _Checked, _Derived, _NotInit, _Reserved, int])
def test_refuses_a_class_it_would_build_differently(cls: type[Any]) -> None:
    with pytest.raises(TypeError):
        positional_builder(cls)
