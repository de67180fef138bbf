"""_tuples.NamedTuple: the class syntax of typing.NamedTuple, on collections.namedtuple, without importing typing."""

from __future__ import annotations

import pickle
import typing

import pytest

from splight_runner._tuples import NamedTuple


class Point(NamedTuple):
    """A point."""

    x: int
    y: int = 0
    label: str = "origin"

    @property
    def norm1(self) -> int:
        return abs(self.x) + abs(self.y)

    def __repr__(self) -> str:
        return f"<{self.label} {self.x},{self.y}>"


class TypedPoint(typing.NamedTuple):
    x: int
    y: int = 0
    label: str = "origin"


def test_fields_defaults_and_tuple_behaviour_are_typing_namedtuples() -> None:
    assert Point._fields == TypedPoint._fields == ("x", "y", "label")
    assert Point._field_defaults == TypedPoint._field_defaults
    point = Point(3, y=-4)
    assert point == TypedPoint(3, -4) == (3, -4, "origin")
    assert isinstance(point, tuple) and isinstance(point, Point)
    assert point._replace(label="p") == Point(3, -4, "p")
    assert type(point._replace(x=1)) is Point and type(Point._make((1, 2, "q"))) is Point
    assert point._asdict() == {"x": 3, "y": -4, "label": "origin"}
    with pytest.raises(TypeError):
        Point()  # x has no default
    with pytest.raises(AttributeError):
        point.z = 1  # type: ignore[attr-defined]  # no __dict__: slots only


def test_the_class_body_is_kept() -> None:
    point = Point(3, -4)
    assert (point.norm1, repr(point), Point.__doc__) == (7, "<origin 3,-4>", "A point.")
    assert Point.__name__ == "Point" and Point.__qualname__ == "Point" and Point.__module__ == __name__
    assert list(Point.__annotations__) == ["x", "y", "label"]


def test_instances_survive_pickling() -> None:
    point = Point(1, 2, "p")
    assert pickle.loads(pickle.dumps(point)) == point


def test_a_field_without_a_default_after_one_with_is_refused() -> None:
    with pytest.raises(TypeError, match="without a default"):

        class Bad(NamedTuple):  # defining it is the test
            a: int = 1
            b: int
