"""The channel's format: a hello, then frames whose bodies any supported CPython reads exactly."""

from __future__ import annotations

import pickle
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from splight_runner.bootstrap.splight_capture import wire


def test_a_hello_names_the_format_and_its_sender() -> None:
    data = wire.hello("pid 12, Python 3.8.18")
    assert data.startswith(wire.MAGIC)
    assert wire.hello_size(data[: wire.HELLO_FIXED]) == len(data)
    assert data[wire.HELLO_FIXED :] == b"pid 12, Python 3.8.18"


def test_another_format_version_is_refused_in_words() -> None:
    data = struct.pack("<4sHH", wire.MAGIC, wire.VERSION + 1, 0)
    with pytest.raises(wire.HelloError, match=f"speaks channel format {wire.VERSION + 1}, this runner reads format 1"):
        wire.hello_size(data)


def test_a_stream_that_is_no_hello_is_refused_in_words() -> None:
    old_style = (1234).to_bytes(4, "little") + b"\xff" * 4  # a bare frame length, as bootstraps before the hello
    with pytest.raises(wire.HelloError, match="does not speak splight-runner's channel format"):
        wire.hello_size(old_style)


def test_a_frame_that_names_a_global_is_never_loaded() -> None:
    """The reader refuses every global: a frame can never make the runner import or call anything."""
    hostile = pickle.dumps([(wire.LOG, pickle.loads)], protocol=4)
    with pytest.raises(ValueError, match="only plain values are read"):
        wire.decode(hostile)


@pytest.mark.parametrize("body", [b"", b"\x80\x04", b"not a pickle", pickle.dumps({"a": 1}, protocol=4)])
def test_malformed_bodies_are_a_value_error(body: bytes) -> None:
    with pytest.raises(ValueError):
        wire.decode(body)


def test_the_sender_refuses_what_is_not_a_plain_value() -> None:
    class Text(str):
        pass

    with pytest.raises(wire.NotPlain):
        wire.encode([(wire.LOG, Text("a str subclass"))])


plain = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text() | st.binary(),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=8), children, max_size=4)
        | st.tuples(children, children)
    ),
    max_leaves=20,
)


@given(st.lists(st.tuples(st.integers(0, 3), plain, plain), max_size=20))
def test_any_plain_items_cross_exactly(items: list[tuple]) -> None:
    assert wire.decode(wire.encode(items)) == items


def test_the_body_is_pickle_protocol_4_whatever_the_writer() -> None:
    """Protocol 4 is what every Python since 3.4 reads: the first bytes say so."""
    body = wire.encode([(wire.STATUS, "Running", 1)])
    assert body[:2] == b"\x80\x04"
