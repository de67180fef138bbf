"""Plain values: what a record's fields become before they leave the caller's thread.

Runs in the component's process (on its threads), so it must never raise and
must cost little for what is already plain. The runner reads the same rules
(``valid_text``) when it builds Engine records.
"""

from __future__ import annotations

from _collections_abc import Mapping  # what ``collections.abc`` re-exports, loaded by ``os``

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: Every surrogate code point to U+FFFD, for ``str.translate`` (no ``re`` to import for it).
_SURROGATES = dict.fromkeys(range(0xD800, 0xE000), "\ufffd")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def valid_text(text: str) -> str:
    """``text`` with what UTF-8 cannot carry replaced by U+FFFD.

    A lone surrogate (``os.fsdecode`` of a file name that is not UTF-8) makes any
    UTF-8 encoder raise: left in, one record would sink its whole batch.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.translate(_SURROGATES)
    return text


def plain_value(value: Any, depth: int = 0) -> Any:
    """``value`` as something the channel (:mod:`.wire`) and OTel attributes can carry.

    Runs on the component's thread for extras that are not already plain, so it
    must never raise: containers are copied (cut at a fixed depth, which also
    cuts cycles), anything else becomes its ``str`` or a placeholder naming its
    type when even that fails.
    """
    kind = type(value)
    if kind is str:
        return value if value.isascii() else valid_text(value)
    if value is None or kind is bool or kind is float:
        return value
    if kind is int:
        # OTLP carries 64-bit integers: a bigger one would fail its whole batch.
        return value if _INT64_MIN <= value <= _INT64_MAX else plain_value(_text_of(value))
    if depth >= 8:
        return "<nested too deep>"
    try:
        if isinstance(value, str):
            return plain_value(str.__str__(value))
        if isinstance(value, bool):
            return bool(value)
        if isinstance(value, int):
            return plain_value(int(value))
        if isinstance(value, float):
            return float(value)
        if isinstance(value, bytes):
            return value.decode("utf-8", "replace")
        if isinstance(value, (list, tuple)):
            return [plain_value(v, depth + 1) for v in value[:1000]]
        if isinstance(value, Mapping):
            return {plain_value(_key(k)): plain_value(v, depth + 1) for k, v in list(value.items())[:1000]}
        return plain_value(str(value))
    except Exception:
        return unprintable(value)


def _text_of(number: int) -> str:
    try:
        return str(number)
    except ValueError:  # more digits than sys.get_int_max_str_digits() allows
        return f"<int of {number.bit_length()} bits>"


def _key(key: Any) -> str:
    if type(key) is str:
        return key
    try:
        return str(key)
    except Exception:
        return unprintable(key)


def unprintable(value: Any) -> str:
    """The placeholder for a value whose ``str`` raised."""
    try:
        name = type(value).__name__
    except Exception:
        name = "object"
    return f"<unprintable {name}>"
