"""Class-syntax named tuples for the modules every ``run-component`` imports, without ``typing``.

``typing.NamedTuple`` is the clearest way to write a settings record, but
importing ``typing`` is about a tenth of the runner's start-up CPU, paid by
every component, idle or not. This base gives the same class syntax on
``collections.namedtuple``: fields are the annotated names, in order, a value
assigned to one is its default, and the methods and properties of the class
body are kept. Type checkers see ``typing.NamedTuple`` (modules import this
one only outside ``TYPE_CHECKING``).
"""

from __future__ import annotations

from collections import namedtuple

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class _NamedTupleMaker(type):
    def __new__(mcs, name: str, bases: tuple[type, ...], namespace: dict[str, Any]) -> type:
        if not bases:
            return super().__new__(mcs, name, bases, namespace)  # the base class below
        fields = tuple(namespace.get("__annotations__", {}))
        defaults = [namespace[field] for field in fields if field in namespace]
        if any(field not in namespace for field in fields[len(fields) - len(defaults) :]):
            raise TypeError(f"{name}: a field without a default follows one with a default")
        plain = namedtuple(name, fields, defaults=defaults, module=namespace.get("__module__"))  # type: ignore[misc]
        body = {key: value for key, value in namespace.items() if key not in fields}
        body["__slots__"] = ()
        body["__annotations__"] = namespace.get("__annotations__", {})
        cls = type(name, (plain,), body)
        cls.__qualname__ = namespace.get("__qualname__", name)
        return cls


class NamedTuple(metaclass=_NamedTupleMaker):
    """Base class: ``class Point(NamedTuple): x: int; y: int = 0``."""
