"""Which proxy the Engine's calls go through: ``HTTP(S)_PROXY`` and ``NO_PROXY``, as ``requests`` reads them.

The original runner used ``requests``, which honours these variables; a
component deployed behind a proxy keeps working. The rules are urllib's
(lower-case names win over upper-case ones; ``HTTP_PROXY`` is ignored when
``REQUEST_METHOD`` says the process runs as a CGI script, CVE-2016-1000110;
``NO_PROXY`` lists host suffixes, or ``*``), read here without importing
``urllib.request``, a heavy import for a few environment variables.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from splight_runner import urls

_SUFFIX = "_proxy"


def environment_proxies(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``{scheme: proxy URL}`` from ``<scheme>_proxy`` variables, and ``no`` from ``no_proxy``."""
    environ = os.environ if environ is None else environ
    proxies: dict[str, str] = {}
    for name, value in environ.items():
        if value and name[-6:].lower() == _SUFFIX:
            proxies[name[:-6].lower()] = value
    if "REQUEST_METHOD" in environ:
        proxies.pop("http", None)  # a CGI script's HTTP_PROXY can come from a client's "Proxy:" header
    for name, value in environ.items():  # the lower-case spelling wins, set or empty
        if name[-6:] == _SUFFIX:
            if value:
                proxies[name[:-6].lower()] = value
            else:
                proxies.pop(name[:-6].lower(), None)
    return proxies


def bypassed(host: str, port: int, proxies: Mapping[str, str]) -> bool:
    """Whether ``NO_PROXY`` names ``host`` (or ``host:port``), itself or as a domain suffix."""
    no_proxy = proxies.get("no")
    if no_proxy is None:
        return False
    if no_proxy == "*":
        return True
    names = (host.lower(), f"{host}:{port}".lower())
    for entry in no_proxy.split(","):
        suffix = entry.strip().lstrip(".").lower()
        if suffix and any(name == suffix or name.endswith("." + suffix) for name in names):
            return True
    return False


def proxy_for(scheme: str, host: str, port: int) -> tuple[str, int, dict[str, str]] | None:
    """The proxy to tunnel through to ``host:port``: its host, port and ``CONNECT`` headers; or None.

    The proxy is only used through ``CONNECT``, so it relays bytes to the Engine
    host and never receives a request (or the Authorization header) addressed to it.
    """
    proxies = environment_proxies()
    url = proxies.get(scheme)
    if not url or bypassed(host, port, proxies):
        return None
    if "://" not in url:
        url = "http://" + url
    parts = urls.split(url)
    if not parts.hostname:
        return None
    try:
        proxy_port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None
    headers: dict[str, str] = {}
    if parts.username is not None:
        import base64

        credentials = f"{urls.unquote(parts.username)}:{urls.unquote(parts.password or '')}"
        token = base64.b64encode(credentials.encode("utf-8")).decode("ascii")
        headers["Proxy-Authorization"] = f"Basic {token}"
    return parts.hostname, proxy_port, headers
