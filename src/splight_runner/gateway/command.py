"""``splight-runner gateway``: the command line that starts a :class:`~splight_runner.gateway.server.Gateway`."""

from __future__ import annotations

import argparse
import ipaddress
import math
import time
from collections.abc import Sequence
from typing import NoReturn

from splight_runner import environment as names
from splight_runner import settings as config
from splight_runner._http import wait_for_stop_signal
from splight_runner.gateway.server import (
    DEFAULT_HOST,
    DEFAULT_LISTEN,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_RECORDS,
    Gateway,
)


class _Parser(argparse.ArgumentParser):
    """argparse that reports mistakes as one line with exit 2 (like cli.py's parser), never exits itself.

    It raises ``settings.ConfigError``, which the CLI reports as it reports a ``UsageError``.
    """

    def error(self, message: str) -> NoReturn:
        raise config.ConfigError(f"{self.prog}: {message}")


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[IPv6]:PORT`` or ``:PORT`` (127.0.0.1) as a bindable address."""
    value = text.strip()
    host, sep, port_text = value.rpartition(":")
    if not sep or not port_text.isdigit():
        raise config.ConfigError(f"gateway: --listen {text!r} is not HOST:PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise config.ConfigError(f"gateway: --listen {text!r}: write an IPv6 address as [ADDRESS]:PORT")
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise config.ConfigError(f"gateway: --listen {text!r}: {port} is not a TCP port")
    return host or DEFAULT_HOST, port


def is_loopback(host: str) -> bool:
    """Whether only this machine can reach ``host`` (``localhost`` or a loopback address)."""
    if host.lower() in ("localhost", "localhost.", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds")
    return value


def main(args: Sequence[str]) -> int:
    """``splight-runner gateway``: serve until SIGINT/SIGTERM; 0 then, config problems raise (exit 2)."""
    parser = _Parser(
        prog="splight-runner gateway",
        description="OTLP/HTTP logs receiver that makes the Splight Engine calls (POST /v1/logs, GET /healthz).",
    )
    parser.add_argument("--listen", default=DEFAULT_LISTEN, help=f"HOST:PORT to listen on (default {DEFAULT_LISTEN})")
    parser.add_argument(
        "--token",
        help=f"require 'Authorization: Bearer TOKEN' (prefer the {names.SPLIGHT_GATEWAY_TOKEN} variable: "
        "arguments are visible to other users)",
    )
    parser.add_argument(
        "--max-body-bytes",
        type=_positive,
        default=DEFAULT_MAX_BODY_BYTES,
        help=f"largest request body, raw and decompressed (default {DEFAULT_MAX_BODY_BYTES})",
    )
    parser.add_argument(
        "--max-records",
        type=_positive,
        default=DEFAULT_MAX_RECORDS,
        help=f"most log records in one request, more is answered 413 (default {DEFAULT_MAX_RECORDS})",
    )
    parser.add_argument(
        "--max-connections",
        type=_positive,
        default=DEFAULT_MAX_CONNECTIONS,
        help=f"most open client connections; at the cap the longest-idle one is closed for a new one "
        f"(default {DEFAULT_MAX_CONNECTIONS}, lowered to fit the open-files limit)",
    )
    parser.add_argument(
        "--stats-interval",
        type=_seconds,
        default=0.0,
        metavar="SECONDS",
        help="print a counters line this often (default 0: only when stopping)",
    )
    ns = parser.parse_args(list(args))
    host, port = parse_listen(ns.listen)
    engine = config.engine_settings()
    token = ns.token if ns.token is not None else config.read(names.SPLIGHT_GATEWAY_TOKEN)
    if token is not None and (not token or any(ch.isspace() for ch in token) or not token.isprintable()):
        raise config.ConfigError(f"gateway: the token ({names.SPLIGHT_GATEWAY_TOKEN}) is empty or has whitespace")
    if not token and not is_loopback(host):
        raise config.ConfigError(
            f"gateway: --listen {ns.listen} is reachable from other machines: set a token "
            f"({names.SPLIGHT_GATEWAY_TOKEN} or --token) so that only your collector can post records"
        )
    gateway = Gateway(
        (host, port),
        engine,
        token=token or None,
        max_body_bytes=ns.max_body_bytes,
        max_records=ns.max_records,
        max_connections=ns.max_connections,
    )
    try:
        gateway.start()
    except OSError as error:
        raise config.ConfigError(f"gateway: cannot listen on {ns.listen}: {error.strerror or error}") from None
    auth = "bearer token required" if token else "no token"
    print(f"splight-runner gateway: listening on {gateway.url} ({auth}), Engine {engine.base_url}", flush=True)
    next_stats = time.monotonic() + ns.stats_interval

    def print_stats() -> None:
        nonlocal next_stats
        if ns.stats_interval and time.monotonic() >= next_stats:
            next_stats = time.monotonic() + ns.stats_interval
            print(f"splight-runner gateway: {gateway.stats.line()}", flush=True)

    try:
        wait_for_stop_signal(print_stats)
    finally:
        gateway.stop()
    print(f"splight-runner gateway: stopped; {gateway.stats.line()}", flush=True)
    return 0
