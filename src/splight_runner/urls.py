"""The few URL rules the runner needs, as ``urllib.parse`` applies them, without importing it.

``urllib.parse`` imports ``re`` and ``ipaddress`` and compiles patterns at
import: about a tenth of a ``run-component`` start-up, spent on one Engine URL,
a proxy URL and two percent-encodings. What is here is what those uses read
(scheme, host, port, credentials, path; ``quote``, ``unquote``, a form body),
with urllib's answers for every URL a property test generates.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import NamedTuple
else:
    from splight_runner._tuples import NamedTuple

_SCHEME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-.")
_DIGITS = frozenset("0123456789")
#: RFC 3986's unreserved characters: what ``quote(text, safe="")`` leaves as it is.
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~")
#: urlsplit removes these anywhere in a URL (bpo-43882), and strips spaces and C0 controls at its ends.
_REMOVED = str.maketrans("", "", "\t\r\n")
_STRIPPED = "".join(map(chr, range(33)))
_HEX = "0123456789abcdefABCDEF"


class Url(NamedTuple):
    """A URL's parts, as ``urllib.parse.urlsplit`` names them."""

    scheme: str
    netloc: str
    path: str
    query: str
    fragment: str

    @property
    def username(self) -> str | None:
        userinfo, at, _ = self.netloc.rpartition("@")
        return userinfo.partition(":")[0] if at else None

    @property
    def password(self) -> str | None:
        userinfo, at, _ = self.netloc.rpartition("@")
        _, colon, password = userinfo.partition(":")
        return password if at and colon else None

    @property
    def hostname(self) -> str | None:
        host = _host_and_port(self.netloc)[0]
        if not host:
            return None
        return host.lower()

    @property
    def port(self) -> int | None:
        """The port, None without one; ValueError when it is not a number from 0 to 65535."""
        port = _host_and_port(self.netloc)[1]
        if not port:
            return None
        if not _DIGITS.issuperset(port) or int(port) > 65535:
            raise ValueError(f"port {port!r} is not a number from 0 to 65535")
        return int(port)


def _host_and_port(netloc: str) -> tuple[str, str]:
    hostport = netloc.rpartition("@")[2]
    if hostport.startswith("["):
        host, _, after = hostport[1:].partition("]")
        return host, after.partition(":")[2]
    host, _, port = hostport.partition(":")
    return host, port


def split(url: str) -> Url:
    """``url``'s parts; ValueError for a bracket without its pair in the host."""
    url = url.lstrip(_STRIPPED).translate(_REMOVED)
    scheme = ""
    before, colon, after = url.partition(":")
    if colon and before and before[0].isascii() and before[0].isalpha() and _SCHEME_CHARS.issuperset(before):
        scheme, url = before.lower(), after
    netloc = ""
    if url[:2] == "//":
        end = len(url)
        for stop in "/?#":
            found = url.find(stop, 2)
            if found >= 0:
                end = min(end, found)
        netloc, url = url[2:end], url[end:]
        if ("[" in netloc) != ("]" in netloc):
            raise ValueError("Invalid IPv6 URL")
    url, _, fragment = url.partition("#")
    path, _, query = url.partition("?")
    return Url(scheme, netloc, path, query, fragment)


def quote(text: str) -> str:
    """``urllib.parse.quote(text, safe="")``: every byte but the unreserved ones as ``%XX``."""
    return "".join(chr(byte) if byte in _UNRESERVED else f"%{byte:02X}" for byte in text.encode("utf-8"))


def form_body(fields: Iterable[tuple[str, str]]) -> str:
    """``urllib.parse.urlencode``: ``key=value`` pairs joined by ``&``, spaces as ``+``."""
    return "&".join(f"{_quote_plus(key)}={_quote_plus(value)}" for key, value in fields)


def _quote_plus(text: str) -> str:
    return "+".join(quote(part) for part in text.split(" "))


def unquote(text: str) -> str:
    """``urllib.parse.unquote``: ``%XX`` runs decoded as UTF-8 (errors replaced), all else kept as it is."""
    if "%" not in text:
        return text
    pieces = text.split("%")
    out = [pieces[0]]
    pending = bytearray()
    for piece in pieces[1:]:
        if len(piece) >= 2 and piece[0] in _HEX and piece[1] in _HEX:
            pending.append(int(piece[:2], 16))
            piece = piece[2:]
        else:
            piece = "%" + piece
        if piece:
            out.append(pending.decode("utf-8", "replace"))
            pending.clear()
            out.append(piece)
    out.append(pending.decode("utf-8", "replace"))
    return "".join(out)
