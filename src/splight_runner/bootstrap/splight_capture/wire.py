"""The channel's format: what a component process writes and the runner reads.

Both sides import this module — the component as ``splight_capture.wire`` from the
bootstrap folder, the runner as ``splight_runner.bootstrap.splight_capture.wire`` —
so the layout and the framing are written once. The two may run on different
CPythons (a 3.8 component, a 3.12 runner), so nothing here depends on what one
interpreter happens to write: ``marshal``, which the channel used before, is
documented as not stable across Python versions.

A connection carries, in this order:

``hello``
    ``MAGIC`` (4 bytes), the format version (2 bytes, little-endian), the length
    of a text that follows (2 bytes) and that text (ASCII: the sender's pid and
    Python version, for the runner's messages). A runner that does not read that
    version says so in one line and closes the connection; it never guesses.
``frame`` (repeated)
    the length of the body (:data:`FRAME_HEADER` bytes, little-endian), then the
    body: a list of flat items (below) as a pickle of protocol 4 made only of
    ``None``, ``bool``, ``int``, ``float``, ``str``, ``bytes``, tuples, lists and
    dicts. Protocol 4 is documented as readable by every Python since 3.4 and is
    as cheap to write as ``marshal`` (measured on 256-record batches: about
    0.3 µs a record, where ``json`` takes 4 µs). The sender refuses any other
    object (:func:`encode` raises, and the channel then sends the record's
    fields as text); the reader refuses every global (:func:`decode`), so a
    frame can never make the runner import or call anything.

Flat items (positions are the contract between :mod:`.capture` and the
runner's ``pipeline.flat``; tests round-trip real records through both):

``(LOG, name, levelno, levelname, message, pathname, lineno, function,
created, extras, exception, stack_info, trace_id, span_id, trace_flags)``
    ``created`` is ``record.created`` (seconds, float); ``extras`` is ``None``
    or a dict of the record's user attributes reduced to plain values;
    ``exception`` is ``None`` or ``(type name, message, formatted text)``.
``(STATUS, engine_state, unix_nanos)``
    a state splight-lib's execution engine entered, as splight-lib names it; the
    runner maps it to the platform's vocabulary (and skips what has no
    deployment status).
``(DROPPED, count, first_unix_nanos, last_unix_nanos)``
    records the sender had to drop (its buffer was full); reported once.
``(OTEL, scope, timestamp, observed_timestamp, severity_number, severity_text,
body, attributes, event_name, trace_id, span_id, trace_flags)``
    a record made through the OTel Logs API in the component.
"""

from __future__ import annotations

import io
import os
from _struct import Struct

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterable

LOG = 0
STATUS = 1
DROPPED = 2
#: The logger name of the record an uncaught exception becomes (the runner reads it back).
UNCAUGHT_LOGGER = "splight_runner"
OTEL = 3
#: Length of a LOG tuple.
LOG_FIELDS = 15

#: The first bytes of every connection.
MAGIC = b"SPLR"
#: The format this module writes and reads. Raise it with any change to the hello, the framing,
#: the encoding or the item layout that an older reader would misread.
VERSION = 1
_HELLO = Struct("<4sHH")
#: Bytes of the fixed part of a hello (what :func:`hello_size` needs to read).
HELLO_FIXED = _HELLO.size
#: Bytes of a frame's header: the length of the frame's body, little-endian.
FRAME_HEADER = 4
#: The pickle protocol of the body (see the module's docstring).
PROTOCOL = 4


def records_in(items: Iterable[Any]) -> int:
    """How many log records a run of flat items stands for, should it be lost.

    One per record (``logging`` or the OTel Logs API), the count a drop report
    carries (records the component already lost), none for a status.
    """
    count = 0
    for item in items:
        kind = item[0] if item else None
        if kind in (LOG, OTEL):
            count += 1
        elif kind == DROPPED:
            count += item[1]
    return count


def hello(about: str) -> bytes:
    """The first bytes a component process writes on a new connection."""
    text = about.encode("ascii", "replace")[:1024]
    return _HELLO.pack(MAGIC, VERSION, len(text)) + text


class HelloError(ValueError):
    """The peer does not speak this format; the message says what it speaks, in words."""


def hello_size(fixed: bytes) -> int:
    """The whole hello's length from its first :data:`HELLO_FIXED` bytes; raises :class:`HelloError`.

    A wrong magic means something that is not a splight-runner bootstrap of this
    format family (an older bootstrap wrote a bare frame length first); a wrong
    version names both, so the one line the runner says tells what to align.
    """
    magic, version, size = _HELLO.unpack(fixed[:HELLO_FIXED])
    if magic != MAGIC:
        raise HelloError("it does not speak splight-runner's channel format (an older splight-runner's bootstrap?)")
    if version != VERSION:
        raise HelloError(f"it speaks channel format {version}, this runner reads format {VERSION}")
    return HELLO_FIXED + size


#: Files ``<folder>/unsent-<pid>``: how many records a process ended with and could not write.
UNSENT_PREFIX = "unsent-"


def unsent_file(folder: str, pid: int) -> str:
    """Where a process that ends with records it could not write says how many (see ``Channel.close``)."""
    return os.path.join(folder, f"{UNSENT_PREFIX}{pid}")


def frame_header(size: int) -> bytes:
    return size.to_bytes(FRAME_HEADER, "little")


def frame_size(header: bytes | bytearray) -> int:
    """The body length a :func:`frame_header` announces."""
    return int.from_bytes(header[:FRAME_HEADER], "little")


class NotPlain(ValueError):
    """An item holds something other than plain values (:func:`encode` refuses it)."""


def _pickle() -> Any:
    """The C pickler, imported with the first frame.

    Not at start-up: ``_pickle`` imports ``functools`` (and with it ``collections``,
    ``operator``, ``types``...), a sixth of the bootstrap's start-up, which a
    component that never logs would pay for nothing. Not ``pickle``: its Python
    half imports ``re`` and ``enum``, for the same classes.
    """
    try:
        import _pickle

        return _pickle
    except ImportError:  # an interpreter built without it
        import pickle

        return pickle


_classes: tuple[Any, Any] | None = None


def _plain_classes() -> tuple[Any, Any]:
    """(pickler, unpickler) of plain values only: anything else would need a global the reader refuses.

    ``reducer_override`` is consulted only for objects the pickler has no
    built-in opcode for (the plain types never reach it), so the check costs
    nothing on the usual path.
    """
    global _classes
    if _classes is None:
        module = _pickle()

        class PlainPickler(module.Pickler):  # type: ignore[misc,name-defined]
            def reducer_override(self, obj: Any) -> Any:
                raise NotPlain(f"not a plain value: {type(obj).__name__}")

        class PlainUnpickler(module.Unpickler):  # type: ignore[misc,name-defined]
            def find_class(self, module_name: str, name: str) -> Any:
                raise ValueError(f"a frame named {module_name}.{name}: only plain values are read")

        _classes = (PlainPickler, PlainUnpickler)
    return _classes


def encode(items: list[tuple[Any, ...]]) -> bytes:
    """A frame's body; raises :class:`NotPlain` when an item holds anything but plain values."""
    buffer = io.BytesIO()
    (_classes or _plain_classes())[0](buffer, PROTOCOL).dump(items)
    return buffer.getvalue()


def decode(body: bytes) -> list[Any]:
    """The items of a frame's body; raises ``ValueError`` (or a subclass) for anything malformed."""
    try:
        items = (_classes or _plain_classes())[1](io.BytesIO(body)).load()
    except (_pickle().UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError) as error:
        raise ValueError(f"unreadable frame ({type(error).__name__}: {error})") from None
    except RecursionError:
        raise ValueError("unreadable frame (nested too deep)") from None
    if type(items) is not list:
        raise ValueError(f"unreadable frame (a {type(items).__name__}, not a list of items)")
    return items
