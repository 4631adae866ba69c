"""Cheap construction of hot frozen dataclasses (messages, events: several are built per task).

A frozen dataclass's ``__init__`` sets each field with ``object.__setattr__`` (about 1,500 instructions
per field on CPython 3.11: a 21-field `TaskView` cost ~32,600). `positional_builder` makes a function
that builds the very same object (same class, still frozen and slotted, equal, hashable) from every
field's value, in field order, for about a quarter of that: it fills a plain slotted twin of the class
with ordinary attribute stores and then gives the object its real class (allowed: same slots layout).
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


def positional_builder(cls: type[T]) -> Callable[..., T]:
    """A function ``build(*values) -> cls`` taking every field of ``cls`` positionally, in field order;
    ``build(*values) == cls(*values)``. No defaults: callers pass every field.

    ``cls`` must be a frozen, slotted dataclass derived from ``object`` or ``Generic`` only, whose fields
    are all ``__init__`` parameters and which has no ``__post_init__`` (there would be checks to skip),
    else `TypeError`.
    """
    _check_buildable(cls)
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    slots = cls.__dict__["__slots__"]
    bases = cls.__dict__.get("__orig_bases__", ())  # ``Generic[T]``: the twin needs the same layout
    twin = types.new_class(f"_{cls.__name__}Twin", bases, exec_body=lambda ns: ns.update(__slots__=slots))
    lines = [f"def build({', '.join(names)}):", "    obj_ = twin_()"]
    lines += [f"    obj_.{name} = {name}" for name in names]
    lines += ["    obj_.__class__ = cls_", "    return obj_", ""]
    source = "\n".join(lines)
    namespace: dict[str, Any] = {"twin_": twin, "cls_": cls}
    exec(source, namespace)  # as dataclasses builds __init__: one straight-line function per class
    build: Callable[..., T] = namespace["build"]
    build.__qualname__ = f"positional_builder({cls.__qualname__})"
    build.__doc__ = f"A {cls.__name__} from all of its fields, in order (see `positional_builder`)."
    return build


def _check_buildable(cls: type[Any]) -> None:
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.frozen or "__slots__" not in cls.__dict__:
        raise TypeError(f"{cls.__name__} is not a frozen slotted dataclass")
    if cls.__bases__ not in ((object,), (Generic,)) or hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__} has a base class or a __post_init__")
    fields = dataclasses.fields(cls)
    if not all(f.init for f in fields) or {"obj_", "twin_", "cls_"} & {f.name for f in fields}:
        raise TypeError(f"{cls.__name__} has a field that is not an __init__ parameter, or a reserved name")
