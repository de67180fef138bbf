"""``sys.stdout`` and ``sys.stderr`` with a copy taken of what goes through them, changing nothing.

Two parts of the bootstrap want to see what the component writes: the stderr
tail (:mod:`.tail`) and, on request, output as records (:mod:`.output`). Both
get it from one thin proxy per stream, which writes through to the original
object first — the same bytes, in the same order, with the original's own
buffering — and only then hands the text to each copy. Everything else is the
original's: ``isatty`` (a terminal keeps its colours), ``fileno``, ``buffer``,
``encoding``, ``flush``. A copy that fails is ignored; the proxy never blocks on
anything but the original write itself. Only text written through the Python
object is seen: what C code writes to the file descriptor goes straight out.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable


class Tee:
    def __init__(self, original: Any) -> None:
        self.__dict__["_original"] = original
        self.__dict__["_copies"] = []

    def write(self, text: Any) -> Any:
        written = self._original.write(text)
        if type(text) is str and text:
            for copy in self._copies:
                try:
                    copy(text)
                except Exception:
                    pass
        return written

    def __getattr__(self, name: str) -> Any:
        return getattr(self._original, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._original, name, value)

    def __iter__(self) -> Any:
        return iter(self._original)

    def __enter__(self) -> Any:
        return self._original.__enter__()

    def __exit__(self, *exc: Any) -> Any:
        return self._original.__exit__(*exc)


def copy(name: str, function: Callable[[str], None]) -> None:
    """Hand ``function`` every text written to ``sys.<name>`` (``stdout`` or ``stderr``) from now on."""
    stream = getattr(sys, name, None)
    if stream is None:
        return
    if not isinstance(stream, Tee):
        stream = Tee(stream)
        setattr(sys, name, stream)
    stream._copies.append(function)


def forget(function: Callable[[str], None]) -> None:
    """Stop handing text to ``function``; a stream left with no copy is the original object again."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name, None)
        if isinstance(stream, Tee):
            stream._copies[:] = [f for f in stream._copies if f is not function]
            if not stream._copies:
                setattr(sys, name, stream._original)
