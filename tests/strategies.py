"""Hypothesis strategies: any record the standard library can build, and what the component's OTel Logs API sends.

Records are made the way ``Logger._log`` makes them (``makeRecord`` with
``extra``), with text that includes lone surrogates, extras that are nested,
cyclic, keyed by non-strings or unprintable, and exceptions whose ``__str__``
raises.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from hypothesis import strategies as st

LONE_SURROGATES = st.sampled_from(["\ud800", "\udbff", "\udc80", "\udcff", "\udfff"])
#: Any code point, lone surrogates included (hypothesis leaves them out of text() by default).
TEXT = st.lists(st.one_of(st.characters(), LONE_SURROGATES), max_size=40).map("".join)
#: Text for the fields the capture hook passes on as they are (see the xfail test at the end).
CLEAN_TEXT = st.text(max_size=40)


class BrokenStr:
    """An object nothing can print."""

    def __str__(self) -> str:
        raise RuntimeError("no str")

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


class Sulky(ValueError):
    def __str__(self) -> str:
        raise RuntimeError("no str for this exception")


class StrSubclass(str):
    pass


LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),  # beyond 64 bits too
    st.floats(),  # NaN and infinities too
    TEXT,
    st.binary(max_size=20),
    TEXT.map(StrSubclass),
    st.builds(BrokenStr),
)
KEYS = st.one_of(TEXT, st.integers(), st.builds(BrokenStr), st.tuples(st.integers()))


def _containers(children: Any) -> Any:
    return st.one_of(
        st.lists(children, max_size=4),
        st.lists(children, max_size=4).map(tuple),
        st.dictionaries(KEYS, children, max_size=4),
    )


VALUES = st.recursive(LEAVES, _containers, max_leaves=12)


@st.composite
def cyclic(draw: Any) -> Any:
    """A dict or list that contains itself, possibly a few levels down."""
    outer: Any = draw(st.sampled_from(["dict", "list"]))
    value: Any = {"name": draw(TEXT)} if outer == "dict" else [draw(TEXT)]
    inner = value
    for _ in range(draw(st.integers(0, 3))):
        child: Any = {} if draw(st.booleans()) else []
        if isinstance(inner, dict):
            inner["child"] = child
        else:
            inner.append(child)
        inner = child
    if isinstance(inner, dict):
        inner["loop"] = value
    else:
        inner.append(value)
    return value


@st.composite
def exc_infos(draw: Any) -> Any:
    kind = draw(st.sampled_from([None, "plain", "sulky", "chained"]))
    if kind is None:
        return None
    message = draw(TEXT)
    try:
        if kind == "plain":
            raise KeyError(message)
        if kind == "sulky":
            raise Sulky(message)
        try:
            raise Sulky(message)
        except Sulky as cause:
            raise RuntimeError(message) from cause
    except Exception:
        return sys.exc_info()


RESERVED = frozenset(logging.LogRecord("n", 0, "p", 0, "m", None, None).__dict__) | {"message", "asctime"}


@st.composite
def log_records(draw: Any) -> logging.LogRecord:
    level = draw(st.one_of(st.sampled_from([10, 20, 30, 40, 50]), st.integers(0, 100)))
    msg = draw(st.one_of(TEXT, TEXT.map(lambda t: t + " %s %d"), st.builds(BrokenStr), VALUES))
    args = draw(st.one_of(st.none(), st.tuples(VALUES), st.tuples(VALUES, VALUES)))
    extra = draw(st.dictionaries(st.one_of(TEXT, st.integers()), st.one_of(VALUES, cyclic()), max_size=4))
    extra = {k: v for k, v in extra.items() if k not in RESERVED}
    logger = logging.Logger(draw(CLEAN_TEXT))
    record = logger.makeRecord(
        logger.name,
        level,
        draw(CLEAN_TEXT),  # pathname
        draw(st.integers(0, 10**6)),
        msg,
        args,
        draw(exc_infos()),
        func=draw(st.one_of(st.none(), CLEAN_TEXT)),
        extra=extra,
        sinfo=draw(st.one_of(st.none(), CLEAN_TEXT)),
    )
    if draw(st.booleans()):
        record.__dict__["tags"] = draw(st.one_of(VALUES, cyclic()))
    return record


#: ASCII text with what JSON must escape (quotes, backslashes, control characters) and what it must not.
ASCII_TEXT = st.text(alphabet=st.characters(max_codepoint=127), max_size=40)


#: What components pass as ``extra={"tags": ...}``: text, or dicts and lists of plain values (NaN included).
TAG_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), TEXT),
    lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(TEXT, children, max_size=3)),
    max_leaves=6,
)


@st.composite
def usual_records(draw: Any) -> logging.LogRecord:
    """The ``logger.info`` of most components: ASCII text, no exception or stack, no extra but ``tags``."""
    logger = logging.Logger(draw(ASCII_TEXT))
    extra = {}
    if draw(st.booleans()):
        extra["tags"] = draw(st.one_of(st.none(), ASCII_TEXT, TEXT, TAG_VALUES))
    record = logger.makeRecord(
        logger.name,
        draw(st.one_of(st.sampled_from([10, 20, 30, 40, 50]), st.integers(0, 100))),
        draw(ASCII_TEXT),  # pathname
        draw(st.integers(0, 10**6)),
        draw(st.one_of(ASCII_TEXT, ASCII_TEXT.map(lambda t: t.replace("%", "%%") + " %s %d"))),
        None,
        None,
        extra=extra,
    )
    if record.args is None and "%s %d" in str(record.msg):
        record.args = (draw(ASCII_TEXT), draw(st.integers()))
    record.created = draw(st.floats(1, 4e9, allow_nan=False))  # 0 would be "now", on each path its own
    return record
